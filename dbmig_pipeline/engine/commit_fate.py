"""What became of a COMMIT whose answer never came.

A connection can drop after the server committed a transaction and before the
client heard so. Applying such a batch again is harmless for its rows, ledger
and audit row (each is written idempotently), but not for the counters its
checkpoint adds to migration_control, nor for what the pass remembers of it
(which batches committed, what the next checkpoint must carry). So a write
notes its transaction id just before COMMIT, and its retry first asks the
server what became of that transaction (`pg_xact_status`, PostgreSQL 13+):
committed means done, nothing is applied again.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbmig_pipeline.engine.errors import CommitInDoubt


@dataclass
class CommitFate:
    """One write's COMMIT, remembered across its retries (see the module docstring)."""

    #: the transaction id of an attempt whose COMMIT was sent but not answered
    xid: str | None = None
    #: what the write returns, kept for the retry that finds its COMMIT went through
    result: Any = None
    #: the pass's bookkeeping after the COMMIT, run once: by `commit`, or by the retry that finds
    #: the COMMIT went through (the caller holds whatever lock guards it)
    after: Callable[[], None] | None = None

    def commit(self, conn, result: Any = None, after: Callable[[], None] | None = None) -> None:
        """COMMIT `conn`'s transaction, noting its id first; then `after()`."""
        with conn.cursor() as cur:
            cur.execute("SELECT pg_current_xact_id()::text")
            self.xid = cur.fetchone()[0]
        self.result, self.after = result, after
        conn.commit()
        self.xid = None
        if after is not None:
            after()

    def went_through(self, conn) -> bool:
        """On a retry, on a working connection: whether the last attempt's unanswered COMMIT took
        effect. False when no COMMIT was left unanswered. Raises CommitInDoubt while the server is
        still ending that transaction."""
        if self.xid is None:
            return False
        with conn.cursor() as cur:
            cur.execute("SELECT pg_xact_status(%s::xid8)", (self.xid,))
            status = cur.fetchone()[0]
        conn.rollback()
        if status == "in progress":
            raise CommitInDoubt(
                f"transaction {self.xid}, whose COMMIT got no answer, is still in progress on the destination "
                "server (its connection is closing); retrying once it has ended")
        self.xid = None
        return status == "committed"
