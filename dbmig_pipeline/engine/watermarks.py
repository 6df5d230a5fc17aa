"""The source's newest cursor per entity: what the source-change sensor polls.

Invariant: one cheap read per entity, answered from the `(updated_at, id)`
index (each `max()` is a single descent; the NULL count scans only the NULL
entries), so polling every minute never loads the source.

Rows dated after the source's clock (a typo, a clock ahead, `infinity`, a
year past 9999, read as the end of Python's range) are kept apart: were they
in the newest value, an edit stamped `now()` would never be newer than it,
and the sensor would see no change until that date.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from psycopg2 import sql
from sqlalchemy.engine import Engine

from dbmig_pipeline.engine.pg_dates import read_out_of_range_as_ends
from dbmig_pipeline.entities.spec import EntitySpec


@dataclass(frozen=True)
class Watermark:
    """Newest cursor value of one entity up to the source's clock, the newest dated after it, and, where
    the cursor may be NULL, how many rows have none."""

    newest: datetime | None
    nulls: int | None = None
    ahead: datetime | None = None

    def to_json(self) -> dict:
        return {"newest": _iso(self.newest), "nulls": self.nulls, "ahead": _iso(self.ahead)}

    @classmethod
    def from_json(cls, data: Mapping) -> Watermark:
        newest, ahead = data.get("newest"), data.get("ahead")
        if "ahead" not in data:  # a cursor written before `ahead`: its newest may lie in the future, so unknown
            newest = None
        return cls(_datetime(newest), data.get("nulls"), _datetime(ahead))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _datetime(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _query(spec: EntitySpec) -> sql.Composed:
    table = sql.Identifier(spec.source_schema, spec.source_table)
    cursor = sql.Identifier(spec.cursor_column)
    nulls = (sql.SQL("(SELECT count(*) FROM {} WHERE {} IS NULL)").format(table, cursor)
             if spec.cursor_nullable else sql.SQL("NULL::bigint"))
    return sql.SQL("SELECT (SELECT max({c}) FROM {t} WHERE {c} <= now()), "
                   "(SELECT max({c}) FROM {t} WHERE {c} > now()), {n}").format(c=cursor, t=table, n=nulls)


def source_watermarks(source: Engine, specs: Iterable[EntitySpec]) -> dict[str, Watermark]:
    """Entity name -> its watermark, read in one short read-only transaction."""
    conn = source.raw_connection()
    try:
        with conn.cursor() as cur:
            read_out_of_range_as_ends(cur)  # a year past 9999 (a typo) is the newest possible value, not an error
            marks = {}
            for spec in specs:
                cur.execute(_query(spec))
                newest, ahead, nulls = cur.fetchone()
                marks[spec.name] = Watermark(newest, nulls, ahead)
        conn.rollback()
    finally:
        conn.close()
    return marks


def moved(before: Mapping[str, Watermark], now: Mapping[str, Watermark]) -> list[str]:
    """Entities whose newest cursor, up to the source's clock or after it, is past the one seen before (or
    never seen)."""
    return [name for name, mark in now.items()
            if _later(mark.newest, before[name].newest if name in before else None)
            or _later(mark.ahead, before[name].ahead if name in before else None)]


def _later(value: datetime | None, seen: datetime | None) -> bool:
    return value is not None and (seen is None or value > seen)


def nulls_grew(before: Mapping[str, Watermark], now: Mapping[str, Watermark]) -> list[str]:
    """Entities with more NULL-cursor rows than seen before: only a full read of the first partition finds them."""
    out = []
    for name, mark in now.items():
        seen = before.get(name)
        if mark.nulls and seen is not None and mark.nulls > (seen.nulls or 0):
            out.append(name)
    return out
