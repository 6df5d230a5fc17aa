"""What `dbmig status` reports, read from the control schema and the target."""
from __future__ import annotations

from dataclasses import asdict

from psycopg2 import sql
from sqlalchemy.engine import Engine

from dbmig_pipeline.engine.pass_lock import pass_holder
from dbmig_pipeline.engine.pg_dates import read_out_of_range_as_ends
from dbmig_pipeline.entities.spec import EntitySpec


def entity_status(dest: Engine, specs: list[EntitySpec]) -> list[dict]:
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('dbmig.migration_control') IS NOT NULL")
            ready = cur.fetchone()[0]
            result = []
            for spec in specs:
                row = {"entity": spec.name, "watermark": None, "target_rows": 0, "deleted_rows": 0,
                       "parked": 0, "quarantined": 0, "last_run": None, "last_outcome": None, "last_run_at": None,
                       "running": None}
                holder = pass_holder(cur, spec.name)
                if holder is not None:
                    row["running"] = asdict(holder)
                if ready:
                    cur.execute(
                        sql.SQL("SELECT to_regclass(%s) IS NOT NULL"), (f"{spec.target_schema}.{spec.target_table}",)
                    )
                    if cur.fetchone()[0]:
                        cur.execute(sql.SQL("SELECT count(*), count(deleted_at) FROM {}").format(
                            sql.Identifier(spec.target_schema, spec.target_table)))
                        row["target_rows"], row["deleted_rows"] = cur.fetchone()
                    read_out_of_range_as_ends(cur)  # a cursor beyond Python's years: its end
                    cur.execute("SELECT max(cursor_updated_at) FROM dbmig.migration_control WHERE entity = %s",
                                (spec.name,))
                    row["watermark"] = cur.fetchone()[0]
                    cur.execute(
                        """
                        SELECT count(*) FILTER (WHERE category = 'missing_parent'),
                               count(*) FILTER (WHERE category <> 'missing_parent')
                          FROM dbmig.row_errors WHERE entity = %s AND resolved_at IS NULL
                        """,
                        (spec.name,),
                    )
                    row["parked"], row["quarantined"] = cur.fetchone()
                    cur.execute(
                        """
                        SELECT run_id, operation, at FROM dbmig.audit_log
                         WHERE entity = %s AND operation IN ('run_finished', 'run_failed')
                         ORDER BY id DESC LIMIT 1
                        """,
                        (spec.name,),
                    )
                    last = cur.fetchone()
                    if last:
                        row["last_run"] = last[0]
                        row["last_outcome"] = "succeeded" if last[1] == "run_finished" else "failed"
                        row["last_run_at"] = last[2]
                result.append(row)
        conn.rollback()
        return result
    finally:
        conn.close()
