"""What became of a COMMIT whose answer never came.

A connection can drop after the server committed a transaction and before the
client heard so. Applying such a batch again is harmless for its rows, ledger
and audit row (each is written idempotently), but not for the counters its
checkpoint adds to migration_control, nor for what the pass remembers of it
(which batches committed, what the next checkpoint must carry). So a write
notes its transaction id just before COMMIT, and its retry first asks the
server what became of that transaction (`pg_xact_status`, PostgreSQL 13+):
committed means done, nothing is applied again (decision 0007).

A transaction id means something only on the server instance that handed it
out: after a crash or a failover, one whose records never reached the disk
can be handed out again. So the server's start time is noted with it, and a
retry that finds another instance applies the write again (idempotent for the
data; the counters may count it twice in that rare case) rather than trust it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2.errors

from dbmig_pipeline.engine.errors import CommitInDoubt

log = logging.getLogger(__name__)

#: Seconds a retry waits for the session of an unanswered COMMIT to end once told to
SESSION_END_WAIT_S = 2.0


@dataclass
class CommitFate:
    """One write's COMMIT, remembered across its retries (see the module docstring)."""

    #: the transaction id of an attempt whose COMMIT may have been sent but was not answered
    xid: str | None = None
    #: the server instance it ran on (`pg_postmaster_start_time()`) and its session there
    server_started: datetime | None = None
    backend_pid: int | None = None
    #: what the write returns, kept for the retry that finds its COMMIT went through
    result: Any = None
    #: the pass's bookkeeping after the COMMIT, run once: by `commit`, or by the retry that finds
    #: the COMMIT went through (the caller holds whatever lock guards it)
    after: Callable[[], None] | None = None

    def note(self, cur) -> None:
        """Note the transaction of `cur` before its COMMIT (callers that hold a lock at COMMIT note
        before taking it: one round trip less inside the lock)."""
        cur.execute("SELECT pg_current_xact_id()::text, pg_postmaster_start_time(), pg_backend_pid()")
        self.xid, self.server_started, self.backend_pid = cur.fetchone()

    def commit(self, conn, result: Any = None, after: Callable[[], None] | None = None) -> None:
        """Note `conn`'s transaction, COMMIT it, then `after()`."""
        with conn.cursor() as cur:
            self.note(cur)
        self.commit_noted(conn, result, after)

    def commit_noted(self, conn, result: Any = None, after: Callable[[], None] | None = None) -> None:
        """COMMIT `conn`'s transaction, already noted (`note`) in this attempt; then `after()`."""
        self.result, self.after = result, after
        conn.commit()
        self.xid = None
        if after is not None:
            after()

    def went_through(self, conn) -> bool:
        """On a retry, on a working connection: whether the last attempt's unanswered COMMIT took
        effect. False when no COMMIT was left unanswered, when it did not happen, and when the server
        is another instance than the one that ran it. While that transaction is still open (its
        session cut off from us but not yet from the server), its session is ended and CommitInDoubt
        raised if it has not ended within SESSION_END_WAIT_S: a technical error, so the retry asks
        again later."""
        if self.xid is None:
            return False
        try:
            status = self._status(conn)
        finally:
            conn.rollback()
        if status == "in progress":
            raise CommitInDoubt(
                f"transaction {self.xid}, whose COMMIT got no answer, is still open on the destination server "
                f"(session pid {self.backend_pid}, told to end); retrying once it has ended")
        self.xid = None
        return status == "committed"

    def _status(self, conn) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_postmaster_start_time()")
            if cur.fetchone()[0] != self.server_started:
                log.warning("the destination server restarted or failed over since transaction %s was sent its "
                            "COMMIT: its outcome cannot be asked, so the write is applied again", self.xid)
                return "unknown"
            try:
                status = self._ask(cur)
                if status == "in progress":
                    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE pid = %s AND backend_xid = %s::xid8::xid", (self.backend_pid, self.xid))
                    deadline = time.monotonic() + SESSION_END_WAIT_S
                    while status == "in progress" and time.monotonic() < deadline:
                        time.sleep(0.05)
                        status = self._ask(cur)
            except psycopg2.errors.InsufficientPrivilege:
                return "in progress"  # not ours to end: the retry asks again later
            except psycopg2.errors.InvalidParameterValue:
                return "unknown"  # an id the server no longer (or not yet) knows: not this transaction's
        return status

    def _ask(self, cur) -> str:
        cur.execute("SELECT pg_xact_status(%s::xid8)", (self.xid,))
        return cur.fetchone()[0]
