"""Which parked rows are worth another try: those whose recorded parent is in the target now.

A row parked for a missing parent records which parent it waits for
(dbmig.row_errors.missing_parent_entity / missing_parent_id). Each run asks
the target, in one statement, which of those parents have arrived; only
those rows are read again from the source. The source is not asked about the
rows still waiting: a parked row whose parent changes in the source with an
`updated_at` bump is read again by the differential scan anyway; one that
changes without a bump, or disappears, is what `dbmig reconcile` finds
(MAPPING.md section 4; decision 0009). Reading every parked row's current
parent from the source at every run grew with the parked rows forever.
"""
from __future__ import annotations

from psycopg2 import sql

from dbmig_pipeline.entities.spec import MISSING_PARENT, EntitySpec


def ready_to_retry(dst_cur, spec: EntitySpec, specs_by_name: dict[str, EntitySpec]) -> list[int]:
    """Legacy ids of the open parked rows of `spec` whose recorded parent is in the target, in id
    order; with them the rows that record no parent of `spec` (parked before the parent was
    recorded, control schema version 4, or for a parent the mapping no longer has), which the
    retry parks again with their parent recorded if it is still missing."""
    probes, arrived = [], []
    for n, parent in enumerate(spec.parents):
        target = specs_by_name[parent.entity]
        alias = sql.Identifier(f"parent_{n}")
        # LATERAL … LIMIT 1: one index probe per parked row. As EXISTS inside the OR the planner
        # hashes the whole parent table instead (0.69 s for 1.5 M patients against 0.07 s).
        probes.append(sql.SQL(
            "LEFT JOIN LATERAL (SELECT true AS arrived FROM {table} p"
            " WHERE e.missing_parent_entity = {name} AND p.legacy_id = e.missing_parent_id LIMIT 1) {alias} ON true"
        ).format(table=sql.Identifier(target.target_schema, target.target_table), name=sql.Literal(parent.entity),
                 alias=alias))
        arrived.append(sql.SQL(" OR {}.arrived").format(alias))
    dst_cur.execute(
        sql.SQL(
            """
            SELECT e.legacy_id FROM dbmig.row_errors e {probes}
             WHERE e.entity = %(entity)s AND e.category = %(category)s AND e.resolved_at IS NULL
               AND (e.missing_parent_entity IS NULL OR e.missing_parent_entity <> ALL(%(parents)s::text[]) {arrived})
             ORDER BY e.legacy_id
            """
        ).format(probes=sql.SQL(" ").join(probes), arrived=sql.SQL("").join(arrived)),
        {"entity": spec.name, "category": MISSING_PARENT, "parents": [p.entity for p in spec.parents]},
    )
    return [row[0] for row in dst_cur.fetchall()]
