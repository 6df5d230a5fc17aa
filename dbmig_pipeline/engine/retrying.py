"""Technical failures of one batch, retried in place with exponential backoff and jitter.

Invariant: before a batch is tried again its destination transaction is rolled
back and the connections it used are replaced (a dropped connection cannot be
reused), so a retry duplicates nothing. A batch that still fails after the last
attempt raises BatchFailed, which names the entity, partitions, batch and legacy
ids and says what to do; it is technical, so the Dagster RetryPolicy then
retries the whole step, which resumes from the checkpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg2
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.alerts import redact
from dbmig_pipeline.engine.errors import BatchFailed, CommitInDoubt, is_technical

log = logging.getLogger(__name__)

T = TypeVar("T")

#: DBMIG_BATCH_RETRIES: attempts after the first one. Five wait 15–18 s in all: a database restarted
#: (or failed over) within that time does not fail the step, nor the run with it when Dagster's own
#: storage lives on the same server and cannot record the step's failure.
DEFAULT_BATCH_RETRIES = 5
#: Seconds: the first wait, doubling up to the cap, each plus up to FIRST_WAIT_S at random so
#: that steps hit by the same outage do not all come back at the same instant.
FIRST_WAIT_S, MAX_WAIT_S = 0.5, 10.0

SOURCE_READ = "source read"
LEDGER_READ = "ledger read"
DESTINATION_WRITE = "destination write"
_VARIABLE = {SOURCE_READ: "DBMIG_SOURCE_URL", LEDGER_READ: "DBMIG_DEST_URL", DESTINATION_WRITE: "DBMIG_DEST_URL"}


@dataclass(frozen=True)
class BatchRef:
    """Where a batch belongs: what failure messages and the audit log name."""

    entity: str
    partitions: str  # "2026-01-01" or "2026-01-01..2026-01-31"; "" for a repair by id
    batch_no: int | None  # None for a repair by id
    legacy_ids: str  # "15–21", "after 14"
    step: str  # SOURCE_READ, LEDGER_READ or DESTINATION_WRITE

    def describe(self) -> str:
        where = f"partitions {self.partitions}" if self.partitions else "repair by id"
        batch = f"batch {self.batch_no}" if self.batch_no is not None else "batch"
        return f"{self.entity}, {where}, {batch} (legacy ids {self.legacy_ids}), {self.step}"


def id_span(ids) -> str:
    """'15–21' for a batch's legacy ids (any iterable of ints), 'none' when empty."""
    ids = [int(i) for i in ids]
    return f"{min(ids)}–{max(ids)}" if ids else "none"


def replace_connection(conn, engine: Engine):
    """A fresh raw connection for one whose batch failed.

    The old one is rolled back if it still answers, then invalidated so that
    the pool never hands it out again (it may be the broken one). If no new
    connection can be had, the old one stays invalidated and the next attempt
    tries again.
    """
    if conn.is_valid:
        try:
            conn.rollback()
        except (psycopg2.Error, DBAPIError):
            pass  # dropped: the server ended its transaction with it
        conn.invalidate()
    return engine.raw_connection()


def is_broken(conn) -> bool:
    """True once the connection is invalidated or the driver has seen it drop."""
    return not conn.is_valid or bool(conn.dbapi_connection.closed)


def release(conn) -> None:
    """Give a raw connection back: rolled back to its pool when healthy, invalidated when broken.

    Never raises, so that closing after a failure cannot hide the failure.
    """
    if not conn.is_valid:
        return
    try:
        conn.rollback()
    except (psycopg2.Error, DBAPIError):
        conn.invalidate()
        return
    conn.close()


def _reason(exc: BaseException, secrets: tuple[str, ...]) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(secret, "***")
    return redact(text)


@dataclass(frozen=True)
class BatchRetry:
    """The in-batch retry policy of one entity pass (DBMIG_BATCH_RETRIES)."""

    retries: int
    dest: Engine  # where a recovered batch is audited
    run_id: str | None
    operator: str
    #: the passwords of both URLs, cut out of every message
    secrets: tuple[str, ...] = field(default=(), repr=False)
    first_wait_s: float = FIRST_WAIT_S

    def run(self, action: Callable[[], T], *, renew: Callable[[], None], ref: BatchRef) -> T:
        """`action()`; after a technical failure, `renew()` (roll back, replace connections) and again."""
        attempts = self.retries + 1
        failures: list[str] = []  # local: the pass and its reader share this policy across threads

        def before_sleep(state: RetryCallState) -> None:
            failures.append(_reason(state.outcome.exception(), self.secrets))
            log.warning("%s: %s; attempt %d of %d failed, retrying in %.1f s", ref.describe(), failures[-1],
                        state.attempt_number, attempts, state.upcoming_sleep)

        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential_jitter(multiplier=self.first_wait_s, max=MAX_WAIT_S, jitter=self.first_wait_s),
            retry=retry_if_exception(is_technical),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if failures:
                        renew()
                    result = action()
        except Exception as exc:
            if not is_technical(exc):
                raise
            raise BatchFailed(self._failure_message(ref, attempts, exc)) from exc
        if failures:
            self._audit_recovery(ref, len(failures), failures[-1])
        return result

    def _failure_message(self, ref: BatchRef, attempts: int, exc: BaseException) -> str:
        variable = _VARIABLE.get(ref.step, "DBMIG_SOURCE_URL and DBMIG_DEST_URL")
        written = ("Whether its last COMMIT took effect is not known yet (if it did, the next run skips its rows "
                   "by their hashes)" if isinstance(exc, CommitInDoubt) else "Nothing of this batch was written")
        return (
            f"{ref.describe()}: failed {'once' if attempts == 1 else f'{attempts} times'} with a technical error, the last: "
            f"{_reason(exc, self.secrets)}. {written}; committed batches stay. "
            f"Check that the database of {variable} is up and reachable; the run resumes from the last "
            "committed batch (Dagster retries the step by itself; otherwise run it again), and "
            "DBMIG_BATCH_RETRIES sets how often a batch is retried in place."
        )

    def _audit_recovery(self, ref: BatchRef, failures: int, error: str) -> None:
        """A detail audit row for a batch that went through after retries; a row that cannot be
        written is logged, never raised: the batch itself is committed."""
        try:
            conn = self.dest.raw_connection()
        except DBAPIError:
            log.exception("could not record the retries of %s", ref.describe())
            return
        try:
            with conn.cursor() as cur:
                bk.audit(cur, "batch_retried", level="detail", entity=ref.entity, partition_key=ref.partitions or None,
                         run_id=self.run_id, operator=self.operator,
                         details={"batch_no": ref.batch_no, "legacy_ids": ref.legacy_ids, "step": ref.step,
                                  "failed_attempts": failures, "error": error[:2000]})
            conn.commit()
        except psycopg2.Error:
            log.exception("could not record the retries of %s", ref.describe())
        finally:
            conn.close()
