"""Which parked rows are worth another try: those whose parents are all in the target now.

Every run used to re-read, transform and re-stage every open parked row, to
find out that most parents were still missing. Asking first costs two index
look-ups per chunk: the rows' current parent ids in the source, then which of
those parents the target holds. A row the source no longer has is returned
too, so the retry resolves its error as gone.
"""
from __future__ import annotations

from collections.abc import Sequence

from psycopg2 import sql

from dbmig_pipeline.engine.id_array import IdArray
from dbmig_pipeline.entities.spec import EntitySpec


def ready_to_retry(src_cur, dst_cur, spec: EntitySpec, specs_by_name: dict[str, EntitySpec],
                   ids: Sequence[int]) -> list[int]:
    """The ids among `ids` (parked rows of `spec`) whose every parent is in the target, or
    that the source lost; in id order."""
    if not ids or not spec.parents:
        return sorted(ids)
    src_cur.execute(
        sql.SQL("SELECT id, {parents} FROM {table} WHERE id = ANY(%s)").format(
            parents=sql.SQL(", ").join(sql.Identifier(p.source_column) for p in spec.parents),
            table=sql.Identifier(spec.source_schema, spec.source_table)),
        (IdArray(ids),),
    )
    parents_of = {row[0]: row[1:] for row in src_cur.fetchall()}
    present: list[set[int]] = []
    for i, parent in enumerate(spec.parents):
        wanted = {p[i] for p in parents_of.values() if p[i] is not None}
        target = specs_by_name[parent.entity]
        dst_cur.execute(
            sql.SQL("SELECT legacy_id FROM {} WHERE legacy_id = ANY(%s)").format(
                sql.Identifier(target.target_schema, target.target_table)),
            (IdArray(sorted(wanted)),),
        )
        present.append({row[0] for row in dst_cur.fetchall()})
    return sorted(
        i for i in ids
        if i not in parents_of
        or all(p is not None and p in present[n] for n, p in enumerate(parents_of[i]))
    )
