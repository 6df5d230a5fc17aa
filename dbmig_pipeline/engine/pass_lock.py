"""One pass (or repair) of an entity at a time, however it was started.

Queued Dagster runs are held to one per entity by tag limits (dagster.yaml),
but `dbmig migrate` executes in its own process, outside the queue, and a
run started by hand can meet a scheduled one. Two passes of one entity keep
the data right (a newer version always wins), but they read and write the
same rows twice and interleave their counters, cursors and audit rows. A
session advisory lock on the destination, taken before the pass writes
anything and held on a connection of its own until the pass ends, makes
the second pass stop at once with a message naming the first; PostgreSQL
drops the lock with its connection, so a pass whose process died holds
nothing. Repairs (reconcile, `dbmig errors retry`) write the source's
current rows whatever their timestamps and hold the same lock.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine.errors import EngineError
from dbmig_pipeline.engine.retrying import release

#: the lock's two keys: dbmig's pass locks, then the entity
_PARAMS = {"namespace": "dbmig.entity_pass"}
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext(%(namespace)s), hashtext(%(entity)s))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext(%(namespace)s), hashtext(%(entity)s))"
_HOLDER = """
SELECT a.pid, a.application_name, a.backend_start
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid::int = hashtext(%(namespace)s) AND l.objid::int = hashtext(%(entity)s)
"""


class EntityBusy(EngineError):
    """Another pass of the entity is running; this one stopped before writing anything."""


@contextmanager
def entity_pass_lock(dest: Engine, entity: str) -> Iterator[None]:
    """Hold the entity's pass lock for the `with` block, or raise EntityBusy at once."""
    params = {**_PARAMS, "entity": entity}
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(_TRY_LOCK, params)
            if not cur.fetchone()[0]:
                raise EntityBusy(_busy_message(cur, entity))
        conn.commit()
    except BaseException:
        _close_session(conn)  # never back to the pool with a lock it may hold
        raise
    try:
        yield
    except BaseException:
        _close_session(conn)
        raise
    try:
        with conn.cursor() as cur:
            cur.execute(_UNLOCK, params)
        conn.commit()
    except Exception:
        _close_session(conn)  # an unlock that fails must not fail the pass that succeeded
    release(conn)


def _close_session(conn) -> None:
    """Close the lock's session for good: PostgreSQL drops its locks with it."""
    if conn.is_valid:
        conn.invalidate()


@dataclass(frozen=True)
class PassHolder:
    """The destination session that holds an entity's pass lock."""

    pid: int
    application: str | None
    #: None when the session belongs to another role and ours may not see its details
    since: datetime | None

    def describe(self) -> str:
        since = f", connected since {self.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"destination session pid {self.pid}, application {self.application!r}{since}"


def pass_holder(cur, entity: str) -> PassHolder | None:
    """Who runs a pass of `entity` now, if anyone (`cur`: any cursor on the destination database)."""
    cur.execute(_HOLDER, {**_PARAMS, "entity": entity})
    row = cur.fetchone()
    return PassHolder(*row) if row else None


def _busy_message(cur, entity: str) -> str:
    holder = pass_holder(cur, entity)
    who = f" ({holder.describe()})" if holder else ""
    return (f"{entity}: another pass of this entity is running{who}; this one stopped before writing "
            "anything. Wait for it to finish (`dbmig status` and the Dagster UI show it), then run again.")
