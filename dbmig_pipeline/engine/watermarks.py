"""The source's newest cursor per entity: what the source-change sensor polls.

Invariant: one cheap read per entity, answered from the `(updated_at, id)`
index (`max()` is a single descent; the NULL count scans only the NULL
entries), so polling every minute never loads the source.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from psycopg2 import sql
from sqlalchemy.engine import Engine

from dbmig_pipeline.entities.spec import EntitySpec


@dataclass(frozen=True)
class Watermark:
    """Newest cursor value of one entity and, where the cursor may be NULL, how many rows have none."""

    newest: datetime | None
    nulls: int | None = None

    def to_json(self) -> dict:
        return {"newest": self.newest.isoformat() if self.newest else None, "nulls": self.nulls}

    @classmethod
    def from_json(cls, data: Mapping) -> Watermark:
        newest = data.get("newest")
        return cls(datetime.fromisoformat(newest) if newest else None, data.get("nulls"))


def _query(spec: EntitySpec) -> sql.Composed:
    table = sql.Identifier(spec.source_schema, spec.source_table)
    cursor = sql.Identifier(spec.cursor_column)
    nulls = (sql.SQL("(SELECT count(*) FROM {} WHERE {} IS NULL)").format(table, cursor)
             if spec.cursor_nullable else sql.SQL("NULL::bigint"))
    return sql.SQL("SELECT (SELECT max({}) FROM {}), {}").format(cursor, table, nulls)


def source_watermarks(source: Engine, specs: Iterable[EntitySpec]) -> dict[str, Watermark]:
    """Entity name -> its watermark, read in one short read-only transaction."""
    conn = source.raw_connection()
    try:
        with conn.cursor() as cur:
            marks = {}
            for spec in specs:
                cur.execute(_query(spec))
                newest, nulls = cur.fetchone()
                marks[spec.name] = Watermark(newest, nulls)
        conn.rollback()
    finally:
        conn.close()
    return marks


def moved(before: Mapping[str, Watermark], now: Mapping[str, Watermark]) -> list[str]:
    """Entities whose newest cursor is past the one seen before (or never seen)."""
    out = []
    for name, mark in now.items():
        seen = before.get(name)
        if mark.newest is not None and (seen is None or seen.newest is None or mark.newest > seen.newest):
            out.append(name)
    return out


def nulls_grew(before: Mapping[str, Watermark], now: Mapping[str, Watermark]) -> list[str]:
    """Entities with more NULL-cursor rows than seen before: only a full read of the first partition finds them."""
    out = []
    for name, mark in now.items():
        seen = before.get(name)
        if mark.nulls and seen is not None and mark.nulls > (seen.nulls or 0):
            out.append(name)
    return out
