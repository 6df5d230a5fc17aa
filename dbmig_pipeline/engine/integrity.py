"""Referential integrity of the target against the source.

A child may point at a soft-deleted parent only when that parent is really
gone from the source (deletes do not touch children); a child pointing at a
parent that is marked deleted although the source still has it is a fault.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from psycopg2 import sql

from dbmig_pipeline.engine.id_array import IdArray
from dbmig_pipeline.entities.spec import EntitySpec


@dataclass
class IntegrityReport:
    entity: str
    children_checked: int = 0
    #: live children whose parent is marked deleted but still exists in the source
    wrongly_deleted_parents: int = 0
    #: live children whose parent is really gone from the source (allowed, reported)
    children_of_deleted_parents: int = 0

    @property
    def passed(self) -> bool:
        return self.wrongly_deleted_parents == 0

    def summary(self) -> dict:
        return asdict(self)


def check_references(src_conn, dst_conn, spec: EntitySpec, specs_by_name: dict[str, EntitySpec]) -> IntegrityReport:
    report = IntegrityReport(spec.name)
    child = sql.Identifier(spec.target_schema, spec.target_table)
    with dst_conn.cursor() as dst, src_conn.cursor() as src:
        dst.execute(sql.SQL("SELECT count(*) FROM {} WHERE deleted_at IS NULL").format(child))
        report.children_checked = dst.fetchone()[0]
        for parent_ref in spec.parents:
            parent = specs_by_name[parent_ref.entity]
            dst.execute(
                sql.SQL(
                    """
                    SELECT p.legacy_id, count(*)
                      FROM {child} c JOIN {parent} p ON p.id = c.{fk}
                     WHERE c.deleted_at IS NULL AND p.deleted_at IS NOT NULL
                     GROUP BY p.legacy_id
                    """
                ).format(child=child, parent=sql.Identifier(parent.target_schema, parent.target_table),
                         fk=sql.Identifier(parent_ref.target_column))
            )
            children_by_parent = dict(dst.fetchall())
            if not children_by_parent:
                continue
            src.execute(
                sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(
                    sql.Identifier(parent.source_schema, parent.source_table)),
                (IdArray(children_by_parent),),
            )
            still_there = {row[0] for row in src.fetchall()}
            for parent_id, children in children_by_parent.items():
                if parent_id in still_there:
                    report.wrongly_deleted_parents += children
                else:
                    report.children_of_deleted_parents += children
    src_conn.rollback()
    dst_conn.rollback()
    return report
