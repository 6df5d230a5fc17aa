"""Reconciliation: make the target converge to the source, whatever timestamps say.

Invariant: nothing is written until the schema pre-flight has passed and the
read-only baseline has measured the differences; a run that would
soft-delete more than the guard's share of an entity, and more than its
row floor, halts instead (a truncated or wrongly connected source must not
wipe the target) unless forced. The floor keeps the guard for tables large
enough to wipe: a few real deletes in a small table are soft-deleted as
MAPPING.md §4 asks, and a soft delete is undone when the row comes back.
Repairs touch exactly the rows that differ.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.baseline import Baseline, baseline_entity, compare_leaf
from dbmig_pipeline.engine.errors import EngineError, IntegrityHalt
from dbmig_pipeline.engine.pass_lock import entity_pass_lock
from dbmig_pipeline.engine.preflight import run_preflight
from dbmig_pipeline.engine.sync import EntitySync, RunInfo
from dbmig_pipeline.settings import DEFAULT_DELETE_GUARD_MIN_ROWS
from dbmig_pipeline.entities.spec import INTEGRITY, EntitySpec


class DeleteGuardHalt(EngineError):
    """Too many source rows look deleted: probably a truncated or wrong source."""

    category = "integrity"


@dataclass
class Reconciliation:
    baseline: Baseline
    repaired: int = 0
    soft_deleted: int = 0
    parked: int = 0
    quarantined: int = 0

    def summary(self) -> dict:
        return {**self.baseline.summary(), "repaired": self.repaired, "soft_deleted": self.soft_deleted,
                "repair_parked": self.parked, "repair_quarantined": self.quarantined}


def _live_rows(dst_conn, entity: str) -> int:
    with dst_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM dbmig.row_ledger WHERE entity = %s AND outcome <> 'deleted'", (entity,))
        count = cur.fetchone()[0]
    dst_conn.rollback()
    return count


def reconcile_entity(source: Engine, dest: Engine, spec: EntitySpec, specs_by_name: dict[str, EntitySpec],
                     run: RunInfo, *, guard_share: float, guard_min_rows: int = DEFAULT_DELETE_GUARD_MIN_ROWS,
                     force_deletes: bool = False) -> Reconciliation:
    """Compare, then repair; holding the entity's pass lock (engine/pass_lock.py): a repair writes the
    source's current rows whatever their timestamps, so a pass must not write between its read and its
    write."""
    with entity_pass_lock(dest, spec.name):
        return _reconcile_entity(source, dest, spec, specs_by_name, run, guard_share=guard_share,
                                 guard_min_rows=guard_min_rows, force_deletes=force_deletes)


def _reconcile_entity(source: Engine, dest: Engine, spec: EntitySpec, specs_by_name: dict[str, EntitySpec],
                      run: RunInfo, *, guard_share: float, guard_min_rows: int,
                      force_deletes: bool) -> Reconciliation:
    src_conn, dst_conn = source.raw_connection(), dest.raw_connection()
    try:
        with src_conn.cursor() as cur:  # schema drift halts a repair exactly as it halts a sync
            run_preflight(cur, spec, dst_conn, operator=run.operator, run_id=run.run_id)
        src_conn.rollback()
        baseline = baseline_entity(src_conn, dst_conn, spec)
        live = _live_rows(dst_conn, spec.name)
        if (baseline.deleted and not force_deletes and baseline.deleted > guard_share * max(live, 1)
                and baseline.deleted >= guard_min_rows):
            message = (
                f"{spec.name}: {baseline.deleted:,} of {live:,} migrated rows ({baseline.deleted / max(live, 1):.0%}) "
                f"are gone from the source, more than the delete guard allows ({guard_share:.0%}, "
                f"DBMIG_DELETE_GUARD_PERCENT, once at least {guard_min_rows:,} rows, DBMIG_DELETE_GUARD_MIN_ROWS). "
                "Nothing was changed. Check DBMIG_SOURCE_URL points at the right, complete database; if the "
                f"deletes are real, run `dbmig reconcile --entity {spec.name} --force-deletes`."
            )
            with dst_conn.cursor() as cur:
                bk.audit(cur, "delete_guard_halt", entity=spec.name, run_id=run.run_id, operator=run.operator,
                         details={"deleted": baseline.deleted, "live": live, "guard_share": guard_share,
                                  "guard_min_rows": guard_min_rows})
            dst_conn.commit()
            raise DeleteGuardHalt(message)
        result = Reconciliation(baseline)
        with dst_conn.cursor() as cur:
            halted = bk.open_error_ids(cur, spec.name, INTEGRITY)
        dst_conn.rollback()
        if baseline.leaves or halted:  # the audit row below is written either way: every operation leaves one (§5)
            sync = EntitySync(source, dest, spec, specs_by_name, [], [], run, None)
            try:
                scratch = Baseline(spec.name)
                for lo, hi in baseline.leaves:
                    with src_conn.cursor() as src_cur, dst_conn.cursor() as dst_cur:
                        new, changed, deleted = compare_leaf(src_cur, dst_cur, spec, lo, hi, scratch)
                    src_conn.rollback()
                    dst_conn.rollback()
                    if new or changed:
                        outcome = sync.reprocess_ids(sorted(new + changed), reason="reconcile_repair")
                        result.repaired += len(outcome.written)
                        result.parked += outcome.parked
                        result.quarantined += outcome.quarantined
                    if deleted:
                        result.soft_deleted += sync.soft_delete(deleted)
                if halted:
                    # Rows a halt named, as every sync retries them: once the source is fixed, the partner
                    # that did not change never differs in the baseline, and its error stayed open.
                    with dst_conn.cursor() as cur:
                        halted = bk.open_error_ids(cur, spec.name, INTEGRITY)
                    dst_conn.rollback()
                    if halted:
                        sync.reprocess_ids(halted, reason="reconcile_repair")
            except IntegrityHalt as exc:
                # Recorded as a pass records it: the named rows' integrity errors keep the entity stopped
                # (every migrate retries them) until the source is fixed.
                sync.record_failure(str(exc), exc.legacy_ids)
                raise
            finally:
                sync.close()
        with dst_conn.cursor() as cur:
            bk.audit(cur, "reconciled", entity=spec.name, run_id=run.run_id, operator=run.operator,
                     details=result.summary())
        dst_conn.commit()
        return result
    finally:
        src_conn.close()
        dst_conn.close()
