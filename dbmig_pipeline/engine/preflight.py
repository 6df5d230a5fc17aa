"""Pre-flight: the schema is the accepted one and the source offers every column the entity reads.

Runs before any write. `run_preflight` compares both sides with the accepted
snapshots (engine/drift.py) and halts on breaking drift; the column guard
below then stops a run that would fail half-way whatever was accepted.
"""
from __future__ import annotations

import logging
import os

from dbmig_pipeline.engine import drift
from dbmig_pipeline.engine.errors import PreflightError, SchemaDriftHalt
from dbmig_pipeline.entities.spec import EntitySpec
from dbmig_pipeline.settings import drift_strictness_from

log = logging.getLogger(__name__)


def run_preflight(src_cur, spec: EntitySpec, dest, *, operator: str, run_id: str | None) -> None:
    """Everything checked before an entity writes; `dest` is the destination connection (its
    audit rows are committed here, before a halt is raised)."""
    strictness = drift_strictness_from(os.environ)
    with dest.cursor() as dst_cur:
        report = drift.inspect(src_cur, dst_cur, spec, strictness, operator=operator, run_id=run_id)
        if report.halts:
            drift.record(dst_cur, "drift_halt", report, operator=operator, run_id=run_id)
        elif report.differences and drift.record_warning_once(dst_cur, report, operator=operator, run_id=run_id):
            log.warning("%s", report.message())
    dest.commit()
    if report.halts:
        raise SchemaDriftHalt(report.message())
    check_source_columns(src_cur, spec)


def check_source_columns(cur, spec: EntitySpec) -> None:
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (spec.source_schema, spec.source_table),
    )
    present = {row[0] for row in cur.fetchall()}
    table = f"{spec.source_schema}.{spec.source_table}"
    if not present:
        raise PreflightError(
            f"{spec.name}: the source has no table {table} (or the source role cannot see it); "
            "check DBMIG_SOURCE_URL and the role's SELECT grant. Nothing was written."
        )
    missing = [c for c in spec.source_columns if c not in present]
    if missing:
        raise PreflightError(
            f"{spec.name}: source table {table} lacks column(s) {', '.join(missing)} that the mapping reads. "
            "The source schema changed: fix the mapping or the source, then run again. Nothing was written."
        )
