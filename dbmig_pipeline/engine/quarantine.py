"""Quarantined and parked rows: listed from dbmig.row_errors, and retried after a fix.

Invariant: a retry re-reads each row's current source version and takes the
same batch path as a run (`EntitySync.reprocess_ids`: one destination
transaction per batch, in-batch retries), entities parents first, so a parent
fixed and loaded in one retry takes its parked children with it. Resolved rows
are marked (`resolved_at`), never deleted; every retry leaves an audit row.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.alerts import redact
from dbmig_pipeline.engine.errors import EngineError, is_technical
from dbmig_pipeline.engine.id_array import IdArray
from dbmig_pipeline.engine.pass_lock import entity_pass_lock
from dbmig_pipeline.engine.sync import EntitySync, RunInfo
from dbmig_pipeline.entities.spec import EntitySpec

COLUMNS = ("entity", "legacy_id", "category", "detail", "missing_parent_entity", "missing_parent_id", "attempts",
           "first_seen_at", "last_seen_at", "resolved_at")
RETRY_OPERATION = "errors_retry"

_FILTER = """
      FROM dbmig.row_errors
     WHERE (%(entities)s::text[] IS NULL OR entity = ANY(%(entities)s::text[]))
       AND (%(category)s::text IS NULL OR category = %(category)s)
       AND (NOT %(open_only)s OR resolved_at IS NULL)
"""


def list_errors(dest: Engine, order: Sequence[str], *, entities: Sequence[str] | None = None,
                category: str | None = None, open_only: bool = True, limit: int | None = None) -> tuple[list[dict], int]:
    """Rows of dbmig.row_errors, entities in `order` (parents first), then by legacy id; and how many match."""
    params = {"entities": list(entities) if entities else None, "category": category, "open_only": open_only,
              "order": list(order), "limit": limit}
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*)" + _FILTER, params)
            total = cur.fetchone()[0]
            cur.execute(f"SELECT {', '.join(COLUMNS)}" + _FILTER
                        + " ORDER BY array_position(%(order)s::text[], entity), legacy_id, category LIMIT %(limit)s",
                        params)
            rows = [dict(zip(COLUMNS, row)) for row in cur.fetchall()]
        conn.rollback()
        return rows, total
    finally:
        conn.close()


@dataclass
class RetryOutcome:
    """One entity's retry: what was tried, what loaded, what is still held and why."""

    entity: str
    retried: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    #: legacy_id -> category of the rows still held after the retry (fixed for one cause, held by another)
    still_open: dict[int, str] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> dict:
        return {"retried": len(self.retried), "loaded": len(self.loaded), "still_open": len(self.still_open),
                **({"error": self.error[:2000]} if self.error else {})}


def _open_ids(dest: Engine, entity: str, category: str | None) -> list[int]:
    rows, _ = list_errors(dest, [entity], entities=[entity], category=category)
    return sorted({row["legacy_id"] for row in rows})


def _still_open(dest: Engine, entity: str, ids: list[int]) -> dict[int, str]:
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT legacy_id, category FROM dbmig.row_errors WHERE entity = %s AND legacy_id = ANY(%s)"
                        " AND resolved_at IS NULL", (entity, IdArray(ids)))
            held = dict(cur.fetchall())
        conn.rollback()
        return held
    finally:
        conn.close()


def retry_errors(source: Engine, dest: Engine, specs: Sequence[EntitySpec], specs_by_name: dict[str, EntitySpec],
                 run: RunInfo, *, category: str | None = None) -> list[RetryOutcome]:
    """Re-read the open error rows of `specs` (given parents first) from the source and sync them again.

    An entity that stops (an integrity conflict still in the source, a
    database that stays down) is reported in its outcome; the others go on.
    """
    outcomes = []
    for spec in specs:
        ids = _open_ids(dest, spec.name, category)
        if not ids:
            continue
        outcome = RetryOutcome(spec.name, retried=ids)
        sync = EntitySync(source, dest, spec, specs_by_name, [], [], run, None)
        try:
            with entity_pass_lock(dest, spec.name):  # a retry writes what the source holds now: no pass between
                written = sync.reprocess_ids(ids, reason=RETRY_OPERATION).written
            outcome.loaded = sorted(set(written) & set(ids))
        except Exception as exc:
            if not (isinstance(exc, EngineError) or is_technical(exc)):
                raise
            outcome.error = redact(str(exc))
        finally:
            sync.close()
        outcome.still_open = _still_open(dest, spec.name, ids)
        outcomes.append(outcome)
    _audit(dest, run, specs, category, outcomes)
    return outcomes


def _audit(dest: Engine, run: RunInfo, specs: Sequence[EntitySpec], category: str | None,
           outcomes: list[RetryOutcome]) -> None:
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            bk.audit(cur, RETRY_OPERATION, entity=specs[0].name if len(specs) == 1 else None, run_id=run.run_id,
                     operator=run.operator,
                     details={"entities": [s.name for s in specs], "category": category,
                              "outcomes": {o.entity: o.summary() for o in outcomes}})
        conn.commit()
    finally:
        conn.close()
