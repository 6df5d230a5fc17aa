"""In-batch retries and the audit retention option, without a database (the retried actions are plain
functions; the integration tests drop real connections)."""
from datetime import timedelta

import psycopg2
import psycopg2.errors
import pytest

from dbmig_pipeline.engine.errors import BatchFailed, is_technical
from dbmig_pipeline.engine.retention import parse_retention
from dbmig_pipeline.engine.retrying import (
    DESTINATION_WRITE,
    SOURCE_READ,
    BatchRef,
    BatchRetry,
)

REF = BatchRef("orders", "2026-01-01..2026-01-31", 7, "1001–1500", SOURCE_READ)


def _policy(retries: int) -> BatchRetry:
    # dest is only used to audit a batch that recovered; these batches never do
    return BatchRetry(retries, dest=None, run_id="run-1", operator="pytest", secrets=("TopSecret99",),
                      first_wait_s=0.001)


def test_a_batch_that_keeps_failing_is_retried_then_fails_with_a_message_that_says_where_and_what_to_do():
    calls, renewals = [], []

    def read():
        calls.append(1)
        raise psycopg2.OperationalError(
            'connection to server at "db" failed for postgresql://migrator:TopSecret99@db/legacy\nmore detail')

    with pytest.raises(BatchFailed) as failed:
        _policy(2).run(read, renew=lambda: renewals.append(1), ref=REF)
    assert len(calls) == 3 and len(renewals) == 2  # every retry on fresh connections
    message = str(failed.value)
    assert message.startswith("orders, partitions 2026-01-01..2026-01-31, batch 7 (legacy ids 1001–1500), source read: "
                              "failed 3 times with a technical error, the last: OperationalError: ")
    assert "DBMIG_SOURCE_URL" in message and "resumes from the last committed batch" in message
    assert "TopSecret99" not in message and "more detail" not in message
    assert isinstance(failed.value.__cause__, psycopg2.OperationalError)
    assert is_technical(failed.value)  # the Dagster RetryPolicy retries the step next


def test_the_write_names_the_destination_variable_and_zero_retries_fail_at_once():
    def write():
        raise psycopg2.errors.DeadlockDetected("deadlock detected")

    with pytest.raises(BatchFailed, match="destination write: failed once .* DBMIG_DEST_URL"):
        _policy(0).run(write, renew=lambda: pytest.fail("no retry was asked for"),
                       ref=BatchRef("patients", "", None, "3–9", DESTINATION_WRITE))


@pytest.mark.parametrize("error", [ValueError("a bug"), psycopg2.errors.UniqueViolation("duplicate key")])
def test_data_and_logic_errors_pass_through_untouched_and_unretried(error):
    calls = []

    def action():
        calls.append(1)
        raise error

    with pytest.raises(type(error)) as raised:
        _policy(3).run(action, renew=lambda: pytest.fail("not retried"), ref=REF)
    assert raised.value is error and len(calls) == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("90d", timedelta(days=90)), ("36h", timedelta(hours=36)), (" 7D ", timedelta(days=7)),
    ("1h", timedelta(hours=1)), ("36500d", timedelta(days=36500)),
])
def test_retention_takes_days_or_hours(text, expected):
    assert parse_retention(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "0d", "0h", "-1d", "1.5d", "90m", "90 days", "36501d", "99999999999d"])
def test_anything_else_is_refused_saying_what_is_accepted(text):
    with pytest.raises(ValueError, match="like 90d or 36h"):
        parse_retention(text)
