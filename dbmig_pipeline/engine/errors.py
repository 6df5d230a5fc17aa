"""Errors the engine raises, each saying what happened and what to do."""
from __future__ import annotations


class EngineError(RuntimeError):
    """Base class: an entity run cannot go on."""

    category = "technical"


class PreflightError(EngineError):
    """The source does not offer what the entity's spec reads; nothing was written."""

    category = "integrity"


class SchemaDriftHalt(PreflightError):
    """The schema differs from the accepted snapshot in a way that halts the entity; nothing was
    written. The message lists the differences and the way out (fix, accept, backfill)."""


class IntegrityHalt(EngineError):
    """Source data breaks an integrity rule (e.g. two orders, one order_number).

    The failing batch was rolled back; the entity stays stopped until the
    cause is fixed in the source, and the first run after the fix goes on
    from the same batch without manual clean-up.
    """

    category = "integrity"

    def __init__(self, message: str, legacy_ids: list[int]):
        super().__init__(message)
        self.legacy_ids = legacy_ids


class BatchFailed(EngineError):
    """A batch still failed with a technical error after its in-batch retries (engine/retrying.py).

    Nothing of the batch was written. Technical, so the Dagster RetryPolicy
    retries the step, which resumes from the last committed batch.
    """


class CommitInDoubt(EngineError):
    """The server has not yet ended the transaction of a COMMIT that got no answer (its session is
    still going away), so the write is neither applied again nor taken as done (engine/commit_fate.py).
    Technical: retried."""


def is_technical(exc: BaseException) -> bool:
    """Connection loss, timeouts, serialization failures and deadlocks: worth retrying.

    Everything else (bad data, a bug, a constraint) fails the same way on
    every retry, so it is not retried.
    """
    import psycopg2
    import psycopg2.errors
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, BatchFailed | CommitInDoubt):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    transient = (
        psycopg2.OperationalError,  # connection refused, dropped, terminated, admin shutdown
        psycopg2.InterfaceError,  # connection already closed
        psycopg2.errors.SerializationFailure,
        psycopg2.errors.DeadlockDetected,
        psycopg2.errors.QueryCanceled,  # statement_timeout
        psycopg2.errors.LockNotAvailable,
    )
    return isinstance(exc, transient)


def error_category(exc: BaseException) -> str:
    """The MAPPING.md category a failed run is reported under: the engine's own, else data_quality."""
    if is_technical(exc):
        return "technical"
    return getattr(exc, "category", "data_quality")
