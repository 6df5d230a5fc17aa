"""The control schema's rows: ledger, row errors, warnings, cursors and audit.

Invariant: every function here runs inside the caller's destination
transaction, so a batch's rows and all of its bookkeeping commit together or
not at all.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from psycopg2 import sql

from dbmig_pipeline.engine.id_array import IdArray
from dbmig_pipeline.engine.pg_dates import exact_text, read_out_of_range_as_ends
from dbmig_pipeline.engine.staging import copy_frame, create_staging
from dbmig_pipeline.entities.spec import TargetColumn

from dbmig_pipeline.engine.extract import Position


_LEDGER_STAGE = "ledger_stage"
_LEDGER_COLUMNS = (TargetColumn("legacy_id", "bigint"), TargetColumn("row_hash", "uuid"),
                   TargetColumn("source_updated_at", "timestamptz"), TargetColumn("outcome", "text"))


def record_ledger(cur, entity: str, frame: pd.DataFrame, *, overwrite: bool = False,
                  exact: Mapping[str, Mapping[int, str]] | None = None) -> None:
    """Upsert (legacy_id, row_hash, source_updated_at, outcome); an older version never replaces a newer one.

    The rows travel by COPY: binding ten thousand values as array literals
    costs more than the upsert itself. `exact`: see `staging.encode_csv`.
    """
    if frame.empty:
        return
    create_staging(cur, _LEDGER_STAGE, _LEDGER_COLUMNS)
    copy_frame(cur, _LEDGER_STAGE, frame, _LEDGER_COLUMNS, exact)
    cur.execute(
        """
        INSERT INTO dbmig.row_ledger AS l (entity, legacy_id, row_hash, source_updated_at, outcome)
        SELECT %(entity)s, u.legacy_id, u.row_hash, u.source_updated_at, u.outcome FROM ledger_stage u
        ON CONFLICT (entity, legacy_id) DO UPDATE
           SET row_hash = EXCLUDED.row_hash, source_updated_at = EXCLUDED.source_updated_at,
               outcome = EXCLUDED.outcome, recorded_at = now()
         WHERE %(overwrite)s OR l.source_updated_at IS NULL OR EXCLUDED.source_updated_at IS NULL
            OR EXCLUDED.source_updated_at >= l.source_updated_at
        """,
        {"entity": entity, "overwrite": overwrite},
    )
    cur.execute("DROP TABLE ledger_stage")


def mark_ledger_deleted(cur, entity: str, ids: Sequence[int]) -> None:
    cur.execute(
        "UPDATE dbmig.row_ledger SET outcome = 'deleted', recorded_at = now() WHERE entity = %s AND legacy_id = ANY(%s)",
        (entity, IdArray(ids)),
    )


def reset_cursors(cur, entity: str, keys: Sequence[str]) -> None:
    cur.execute(
        "UPDATE dbmig.migration_control SET cursor_updated_at = NULL, cursor_id = NULL "
        "WHERE entity = %s AND partition_key = ANY(%s)",
        (entity, list(keys)),
    )


def recorded_hashes(cur, entity: str, ids: Sequence[int]) -> dict[int, str]:
    if not len(ids):
        return {}
    cur.execute(
        # a row recorded as deleted counts as never seen: if it reappears it is synced (and revived)
        "SELECT legacy_id, replace(row_hash::text, '-', '') FROM dbmig.row_ledger "
        "WHERE entity = %s AND legacy_id = ANY(%s) "
        "AND outcome <> 'deleted'",
        (entity, IdArray(ids)),
    )
    return dict(cur.fetchall())


def has_history(cur, entity: str) -> bool:
    """Whether any row of `entity` has a ledger row, an open error or a warning.

    Each probe is a scalar subquery ordered by its index, which answers in a
    few pages. Not EXISTS: PostgreSQL drops the ORDER BY and LIMIT of an
    EXISTS subquery, and as soon as an entity holds a large share of the
    ledger the planner expects a sequential scan to find one of its rows at
    once, so it scanned through every row of the entities written before
    (85 ms for orders at scale 1.0, at every pass).
    """
    cur.execute(
        """
        SELECT (SELECT 1 FROM dbmig.row_ledger WHERE entity = %(entity)s
                 ORDER BY legacy_id LIMIT 1) IS NOT NULL
            OR (SELECT 1 FROM dbmig.row_errors WHERE entity = %(entity)s AND resolved_at IS NULL
                 ORDER BY category, legacy_id LIMIT 1) IS NOT NULL
            OR (SELECT 1 FROM dbmig.row_warnings WHERE entity = %(entity)s
                 ORDER BY legacy_id, column_name LIMIT 1) IS NOT NULL
        """,
        {"entity": entity},
    )
    return cur.fetchone()[0]


def _optional_column(frame: pd.DataFrame, column: str, kind) -> list:
    """`frame[column]` as a parameter list, None where missing (or for every row without the column)."""
    if column not in frame.columns:
        return [None] * len(frame)
    return [None if pd.isna(v) else kind(v) for v in frame[column]]


def record_errors(cur, entity: str, errors: pd.DataFrame, run_id: str | None) -> None:
    """One open row per source row and cause; other causes of the same rows are resolved.

    `errors` has legacy_id, category and detail; parked rows also name the parent they wait for
    (missing_parent_entity, missing_parent_id), which the retry of parked rows asks the target about.
    """
    if errors.empty:
        return
    params = {
        "entity": entity,
        "ids": [int(v) for v in errors["legacy_id"]],
        "categories": list(errors["category"]),
        "details": [str(v) for v in errors["detail"]],
        "parent_entities": _optional_column(errors, "missing_parent_entity", str),
        "parent_ids": _optional_column(errors, "missing_parent_id", int),
        "run_id": run_id,
    }
    cur.execute(
        """
        UPDATE dbmig.row_errors e SET resolved_at = now()
          FROM unnest(%(ids)s::bigint[], %(categories)s::text[]) AS u(legacy_id, category)
         WHERE e.entity = %(entity)s AND e.legacy_id = u.legacy_id AND e.category <> u.category
           AND e.resolved_at IS NULL
        """,
        params,
    )
    cur.execute(
        """
        INSERT INTO dbmig.row_errors AS e (entity, legacy_id, category, detail, missing_parent_entity,
                                           missing_parent_id, run_id)
        SELECT %(entity)s, u.legacy_id, u.category, u.detail, u.parent_entity, u.parent_id, %(run_id)s
          FROM unnest(%(ids)s::bigint[], %(categories)s::text[], %(details)s::text[], %(parent_entities)s::text[],
                      %(parent_ids)s::bigint[]) AS u(legacy_id, category, detail, parent_entity, parent_id)
        ON CONFLICT (entity, legacy_id, category) DO UPDATE
           SET detail = EXCLUDED.detail, missing_parent_entity = EXCLUDED.missing_parent_entity,
               missing_parent_id = EXCLUDED.missing_parent_id, attempts = e.attempts + 1, last_seen_at = now(),
               resolved_at = NULL, run_id = EXCLUDED.run_id
        """,
        params,
    )


def resolve_errors(cur, entity: str, ids: Iterable[int], categories: Sequence[str] | None = None) -> int:
    ids = [int(i) for i in ids]
    if not ids:
        return 0
    cur.execute(
        """
        UPDATE dbmig.row_errors SET resolved_at = now()
         WHERE entity = %(entity)s AND legacy_id = ANY(%(ids)s) AND resolved_at IS NULL
           AND (%(categories)s::text[] IS NULL OR category = ANY(%(categories)s::text[]))
        """,
        {"entity": entity, "ids": IdArray(ids), "categories": list(categories) if categories else None},
    )
    return cur.rowcount


def open_error_ids(cur, entity: str, category: str) -> list[int]:
    cur.execute(
        "SELECT legacy_id FROM dbmig.row_errors WHERE entity = %s AND category = %s AND resolved_at IS NULL ORDER BY legacy_id",
        (entity, category),
    )
    return [row[0] for row in cur.fetchall()]


def record_warnings(cur, entity: str, warnings: pd.DataFrame, migrated_ids: Sequence[int], run_id: str | None,
                    *, clear_ids: Sequence[int] | None = None) -> None:
    """Warnings of the rows just migrated replace whatever those rows had before.

    `clear_ids` narrows the clean-up to rows that may have old warnings (rows
    never migrated before have none); None means all migrated rows.
    """
    ids = [int(i) for i in migrated_ids]
    clear = ids if clear_ids is None else [int(i) for i in clear_ids]
    if clear:
        cur.execute("DELETE FROM dbmig.row_warnings WHERE entity = %s AND legacy_id = ANY(%s)", (entity, IdArray(clear)))
    warnings = warnings[warnings["legacy_id"].isin(ids)] if len(warnings) else warnings
    if warnings.empty:
        return
    cur.execute(
        """
        INSERT INTO dbmig.row_warnings (entity, legacy_id, column_name, detail, run_id)
        SELECT %(entity)s, u.legacy_id, u.column_name, u.detail, %(run_id)s
          FROM unnest(%(ids)s::bigint[], %(columns)s::text[], %(details)s::text[]) AS u(legacy_id, column_name, detail)
        ON CONFLICT (entity, legacy_id, column_name) DO UPDATE
           SET detail = EXCLUDED.detail, seen_at = now(), run_id = EXCLUDED.run_id
        """,
        {
            "entity": entity,
            "ids": [int(v) for v in warnings["legacy_id"]],
            "columns": list(warnings["column"]),
            "details": [str(v) for v in warnings["detail"]],
            "run_id": run_id,
        },
    )


@dataclass
class ControlRow:
    partition_key: str
    status: str
    cursor: Position | None
    #: the run that last started a pass over the partition
    run_id: str | None = None


def read_control(cur, entity: str, keys: Sequence[str]) -> dict[str, ControlRow]:
    """The saved status and cursor of the entity's partitions `keys` (an infinite cursor with its text,
    see `Position.ts_text`)."""
    read_out_of_range_as_ends(cur)  # a cursor saved outside Python's range reads as its end, with its text
    cur.execute(
        sql.SQL(
            """
            SELECT partition_key, status, cursor_updated_at, cursor_id, {text}, run_id
              FROM dbmig.migration_control WHERE entity = %s AND partition_key = ANY(%s)
            """
        ).format(text=exact_text(sql.Identifier("cursor_updated_at"))),
        (entity, list(keys)),
    )
    rows = {}
    for key, status, ts, cursor_id, ts_text, run_id in cur.fetchall():
        cursor = None
        if cursor_id is not None:
            cursor = Position(ts=ts, id=cursor_id, in_nulls=ts is None, ts_text=ts_text)
        rows[key] = ControlRow(key, status, cursor, run_id)
    return rows


def pass_mode(cur, entity: str, run_id: str | None) -> str | None:
    """The mode (full, differential) a run's pass of `entity` started in, from its `run_started` audit row."""
    if run_id is None:
        return None
    cur.execute("SELECT details->>'mode' FROM dbmig.audit_log WHERE operation = 'run_started' AND entity = %s"
                " AND run_id = %s ORDER BY id DESC LIMIT 1", (entity, run_id))
    found = cur.fetchone()
    return found[0] if found else None


def start_partitions(cur, entity: str, keys: Sequence[str], run_id: str | None) -> dict[str, ControlRow]:
    """Mark the run's partitions running; returns what they held before."""
    before = read_control(cur, entity, keys)
    cur.execute(
        """
        INSERT INTO dbmig.migration_control AS c (entity, partition_key, status, run_id, started_at, updated_at)
        SELECT %(entity)s, k, 'running', %(run_id)s, now(), now() FROM unnest(%(keys)s::text[]) AS k
        ON CONFLICT (entity, partition_key) DO UPDATE
           SET status = 'running', run_id = EXCLUDED.run_id, started_at = now(), finished_at = NULL,
               last_error = NULL, updated_at = now()
        """,
        {"entity": entity, "keys": list(keys), "run_id": run_id},
    )
    return before


@dataclass
class PartitionProgress:
    """What one batch did within one partition."""

    cursor: Position | None = None
    read: int = 0
    written: int = 0
    unchanged: int = 0
    parked: int = 0
    quarantined: int = 0


def save_checkpoint(cur, entity: str, progress: dict[str, PartitionProgress], done_keys: Sequence[str]) -> None:
    """Advance cursors and counters of the partitions a batch touched; close those it passed.

    One statement whatever the number of partitions: a full load touches thousands.
    """
    if progress:
        items = sorted(progress.items())
        cur.execute(
            """
            UPDATE dbmig.migration_control c
               SET cursor_updated_at = CASE WHEN u.has_cursor THEN u.ts ELSE c.cursor_updated_at END,
                   cursor_id = CASE WHEN u.has_cursor THEN u.cursor_id ELSE c.cursor_id END,
                   rows_read = c.rows_read + u.read, rows_written = c.rows_written + u.written,
                   rows_unchanged = c.rows_unchanged + u.unchanged, rows_parked = c.rows_parked + u.parked,
                   rows_quarantined = c.rows_quarantined + u.quarantined, updated_at = now()
              FROM unnest(%(keys)s::text[], %(has)s::boolean[], %(ts)s::timestamptz[], %(ids)s::bigint[],
                          %(read)s::bigint[], %(written)s::bigint[], %(unchanged)s::bigint[],
                          %(parked)s::bigint[], %(quarantined)s::bigint[])
                   AS u(partition_key, has_cursor, ts, cursor_id, read, written, unchanged, parked, quarantined)
             WHERE c.entity = %(entity)s AND c.partition_key = u.partition_key
            """,
            {
                "entity": entity,
                "keys": [k for k, _ in items],
                "has": [p.cursor is not None for _, p in items],
                "ts": [p.cursor.ts_param if p.cursor else None for _, p in items],
                "ids": [p.cursor.id if p.cursor else None for _, p in items],
                "read": [p.read for _, p in items],
                "written": [p.written for _, p in items],
                "unchanged": [p.unchanged for _, p in items],
                "parked": [p.parked for _, p in items],
                "quarantined": [p.quarantined for _, p in items],
            },
        )
    if done_keys:
        cur.execute(
            """
            UPDATE dbmig.migration_control SET status = 'succeeded', finished_at = now(), updated_at = now()
             WHERE entity = %s AND partition_key = ANY(%s) AND status = 'running'
            """,
            (entity, list(done_keys)),
        )


def fail_partitions(cur, entity: str, keys: Sequence[str], status: str, error: str) -> None:
    cur.execute(
        """
        UPDATE dbmig.migration_control SET status = %s, last_error = %s, finished_at = now(), updated_at = now()
         WHERE entity = %s AND partition_key = ANY(%s) AND status = 'running'
        """,
        (status, error[:4000], entity, list(keys)),
    )


def last_batch_no(cur, entity: str, run_id: str | None) -> int:
    """The highest batch number the run already committed for the entity (0 if none).

    A step retried within its run keeps the run id, so its batches must be
    numbered after the earlier attempt's: (run_id, entity, batch_no) is unique.
    """
    if run_id is None:
        return 0
    cur.execute(
        """
        SELECT coalesce(max(batch_no), 0) FROM dbmig.audit_log
         WHERE run_id = %s AND entity = %s AND operation = 'batch_committed'
        """,
        (run_id, entity),
    )
    return cur.fetchone()[0]


def audit(
    cur,
    operation: str,
    *,
    entity: str | None = None,
    partition_key: str | None = None,
    run_id: str | None = None,
    batch_no: int | None = None,
    operator: str | None = None,
    level: str = "summary",
    details: dict | None = None,
) -> None:
    # A retried batch whose unanswered COMMIT happened is not applied again (engine/commit_fate.py); should
    # one ever be (the server could not say), its audit row is already there, and stays the only one.
    once = (" ON CONFLICT (run_id, entity, batch_no) WHERE operation = 'batch_committed' DO NOTHING"
            if operation == "batch_committed" else "")
    cur.execute(
        "INSERT INTO dbmig.audit_log (operation, level, entity, partition_key, run_id, batch_no, operator, details)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" + once,
        (operation, level, entity, partition_key, run_id, batch_no, operator, json.dumps(details or {}, default=str)),
    )


def last_cursor_before(cur, entity: str) -> tuple[datetime | None, list[tuple[str, str]]]:
    """The newest saved cursor of the entity and every partition's status (for pending ranges)."""
    read_out_of_range_as_ends(cur)
    cur.execute(
        "SELECT max(cursor_updated_at) FROM dbmig.migration_control WHERE entity = %s AND status = 'succeeded'",
        (entity,),
    )
    newest = cur.fetchone()[0]
    cur.execute(
        "SELECT partition_key, status FROM dbmig.migration_control WHERE entity = %s ORDER BY partition_key",
        (entity,),
    )
    return newest, cur.fetchall()
