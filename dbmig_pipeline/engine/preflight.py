"""Pre-flight: the source offers every column the entity reads.

Runs before any write. The schema-drift checks extend this with full
fingerprints; this guard alone already stops a run that would fail half-way.
"""
from __future__ import annotations

from dbmig_pipeline.engine.errors import PreflightError
from dbmig_pipeline.entities.spec import EntitySpec


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
