"""Which partitions a run without explicit partitions must cover ("everything pending")."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.extract import BEFORE_ANY_ID, LOSSY_TIMESTAMPS, Position, is_lossy
from dbmig_pipeline.engine.partitions import Partition, key_of
from dbmig_pipeline.entities.spec import EntitySpec


def pending_keys(dest: Engine, entity: str, all_keys: list[str], lookback: timedelta) -> list[str]:
    """From the first unfinished partition (or the saved watermark minus the
    look-back, whichever is earlier) to the newest partition."""
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('dbmig.migration_control') IS NOT NULL")
            if not cur.fetchone()[0]:
                return list(all_keys)
            newest, statuses = bk.last_cursor_before(cur, entity)
        conn.rollback()
    finally:
        conn.close()
    succeeded = {key for key, status in statuses if status == "succeeded"}
    start = next((k for k in all_keys if k not in succeeded), all_keys[-1])
    if newest is not None:
        start = min(start, key_of(_looked_back(newest, lookback), all_keys))
    return [k for k in all_keys if k >= start]


def _looked_back(ts, lookback: timedelta):
    """`ts` minus the look-back; the first instant where that would leave Python's range (or `ts` may
    stand for -infinity)."""
    if is_lossy(ts):
        return ts
    try:
        return ts - lookback
    except OverflowError:
        return LOSSY_TIMESTAMPS[1]


def union_pending_keys(dest: Engine, entities: list[str], all_keys: list[str], lookback: timedelta) -> list[str]:
    """One range that covers what every entity has pending (a single run for all)."""
    starts = [pending_keys(dest, e, all_keys, lookback)[0] for e in entities]
    first = min(starts) if starts else all_keys[-1]
    return [k for k in all_keys if k >= first]


def resuming_partition(control: dict, partitions: list[Partition]) -> Partition | None:
    """The earliest partition of the range left unfinished with a saved cursor (a crash or a halt)."""
    for partition in partitions:
        row = control.get(partition.key)
        if row is not None and row.status != "succeeded" and row.cursor is not None:
            return partition
    return None


def start_position(control: dict, partitions: list[Partition], spec: EntitySpec, mode: str,
                   lookback: timedelta) -> Position | None:
    """Where a keyset pass over `partitions` begins.

    `control` maps partition keys to their saved `ControlRow`. A crash or a
    halt resumes at the cursor of the earliest unfinished partition (the
    partitions before it are done), a differential run at the cursor minus
    the look-back, a full run at the window start (the NULL-cursor rows
    first, where the entity has them). None means the window start.
    """
    resume = resuming_partition(control, partitions)
    if resume is not None:
        return control[resume.key].cursor
    first = partitions[0]
    row = control.get(first.key)
    null_start = Position(None, BEFORE_ANY_ID, in_nulls=True) if first.is_first and spec.cursor_nullable else None
    if row is None or row.cursor is None or mode == "full":
        return null_start
    if row.cursor.in_nulls:
        return None
    if row.cursor.ts_text is not None or is_lossy(row.cursor.ts):
        # ±infinity, or the instants psycopg2 reads them as: nothing to look back from (and the year-1
        # instant has no earlier one); the rows from there are read again and compared by their hashes
        return Position(row.cursor.ts, BEFORE_ANY_ID, ts_text=row.cursor.ts_text)
    ts = _looked_back(row.cursor.ts, lookback)
    if ts == LOSSY_TIMESTAMPS[1]:  # within the look-back of the year 1: from the very start
        return Position(ts, BEFORE_ANY_ID, ts_text="-infinity")
    if first.start is not None and ts < first.start:
        return None
    return Position(ts, BEFORE_ANY_ID)
