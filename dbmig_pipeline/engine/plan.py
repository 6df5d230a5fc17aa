"""Which partitions a run without explicit partitions must cover ("everything pending")."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.partitions import key_of


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
        start = min(start, key_of(newest - lookback, all_keys))
    return [k for k in all_keys if k >= start]


def union_pending_keys(dest: Engine, entities: list[str], all_keys: list[str], lookback: timedelta) -> list[str]:
    """One range that covers what every entity has pending (a single run for all)."""
    starts = [pending_keys(dest, e, all_keys, lookback)[0] for e in entities]
    first = min(starts) if starts else all_keys[-1]
    return [k for k in all_keys if k >= first]
