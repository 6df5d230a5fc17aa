"""Crash safety: a load killed at any point loses at most its uncommitted batch, and a re-run
completes it with every row exactly once (MAPPING.md section 4; sync.py's invariant)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import pytest

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine.sync import DIFFERENTIAL, FULL, EntitySync, SyncStats
from dbmig_pipeline.entities import ENTITY_NAMES
from dbmig_pipeline_tests.integration.engine_helpers import (
    assert_target_matches_oracle,
    insert,
    ledger,
    pair_fixture,  # noqa: F401 (the `pair` fixture)
    target_ids,
)

KILL_SCALE = 0.002  # 3 000 patients and 3 800 orders: 60 and 76 batches of 50
RUN = "run-killed"


def committed_batches(pair, entity: str) -> int:
    return pair.dst("SELECT count(*) FROM dbmig.audit_log WHERE operation = 'batch_committed' AND entity = :e",
                    e=entity)[0][0]


def assert_batches_atomic(pair, entity: str) -> None:
    """Target rows, ledger, row errors and batch audit rows tell the same story: whole batches or nothing."""
    outcomes = ledger(pair, entity)
    assert {i for i, o in outcomes.items() if o == "loaded"} == target_ids(pair, entity), entity
    held = pair.dst("SELECT legacy_id FROM dbmig.row_errors WHERE entity = :e AND resolved_at IS NULL", e=entity)
    assert {i for (i,) in held} == {i for i, o in outcomes.items() if o in ("parked", "quarantined")}, entity
    read = pair.dst("SELECT coalesce(sum((details->>'read')::int), 0) FROM dbmig.audit_log"
                    " WHERE operation = 'batch_committed' AND entity = :e", e=entity)[0][0]
    assert read == len(outcomes), entity  # a first load: every row read is a changed row with a ledger row


def assert_no_duplicate_batches(pair) -> None:
    duplicates = pair.dst("SELECT run_id, entity, batch_no FROM dbmig.audit_log WHERE operation = 'batch_committed'"
                          " GROUP BY 1, 2, 3 HAVING count(*) > 1")
    assert duplicates == []


# --- 7 and 8: SIGKILL ------------------------------------------------------------------

def test_full_load_killed_mid_run_resumes_to_exactly_one_copy_of_every_row(pair):
    counts = seed_legacy(pair.source_url, scale=KILL_SCALE)
    # The child sleeps a little after each batch so that the kill lands mid-entity, whatever the machine.
    script = textwrap.dedent(f"""
        import time
        from dbmig_pipeline_tests.integration.engine_helpers import make_pair
        pair = make_pair({pair.source_url!r}, {pair.dest_url!r})
        pair.run_all(mode="full", batch_size=50, run_id={RUN!r}, on_progress=lambda event: time.sleep(0.02))
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while committed_batches(pair, "patients") < 8:
            assert child.poll() is None, f"the load ended before the kill:\n{child.stdout.read().decode()}"
            assert time.monotonic() < deadline, "no patients batch committed within 60 s"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    # 8. What the killed run committed is consistent, batch by batch.
    for entity in ENTITY_NAMES:
        assert_batches_atomic(pair, entity)
    assert len(target_ids(pair, "offices")) > 0 and len(target_ids(pair, "doctors")) > 0
    assert 0 < len(target_ids(pair, "patients")) < counts["patients"]  # killed inside patients
    assert target_ids(pair, "orders") == set()
    partial = pair.dst("SELECT count(*) FROM dbmig.migration_control WHERE entity = 'patients' AND status = 'running'")
    assert partial[0][0] > 0  # the kill left the pass unfinished, as a crash does

    # 7. Re-run the same range to completion, under the same run id (a retried step keeps its run's id).
    results = pair.run_all(mode=FULL, batch_size=50, run_id=RUN)
    assert all(isinstance(stats, SyncStats) for stats in results.values()), results
    expected = assert_target_matches_oracle(pair)
    for entity in ENTITY_NAMES:
        source_ids = {i for (i,) in pair.src(f"SELECT id FROM public.{entity}")}
        loaded = target_ids(pair, entity)
        assert loaded == expected[entity].loaded
        assert loaded == source_ids - set(expected[entity].rejects) - expected[entity].parked
        outcomes = ledger(pair, entity)
        assert set(outcomes) == source_ids and len(outcomes) == counts[entity]  # one ledger row per source row
        assert {i for i, o in outcomes.items() if o == "loaded"} == loaded
        written = pair.dst("SELECT coalesce(sum((details->>'written')::int), 0) FROM dbmig.audit_log"
                           " WHERE operation = 'batch_committed' AND entity = :e AND run_id = :r", e=entity, r=RUN)
        assert written[0][0] == len(loaded), entity  # each row written once, before or after the kill
    assert_no_duplicate_batches(pair)
    assert pair.dst("SELECT DISTINCT status FROM dbmig.migration_control") == [("succeeded",)]


# --- a step retried within its run -------------------------------------------------------

class TechnicalFailure(Exception):
    pass


def _twenty_patients(pair) -> None:
    """An office, a doctor (both loaded) and twenty patients at distinct hours (not yet loaded)."""
    old = datetime(2019, 3, 1, tzinfo=UTC)
    insert(pair, "offices", [{"created_at": old, "updated_at": old, "name": "Office", "is_active": True}])
    insert(pair, "doctors", [{"created_at": old, "updated_at": old, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "GP", "is_active": True}])
    insert(pair, "patients", [{"created_at": old, "updated_at": old.replace(hour=i), "doctor_id": 1,
                               "first_name": "Pat", "last_name": f"P{i}", "status": 1} for i in range(20)])
    pair.run("offices")
    pair.run("doctors")


def test_a_step_retried_in_the_same_run_goes_on_and_numbers_its_batches_after_the_failed_attempt(pair):
    _twenty_patients(pair)

    def fail_after_two(event):
        if event.batch_no == 2:
            raise TechnicalFailure("connection lost")

    with pytest.raises(TechnicalFailure):  # one writer: no third batch in flight when the second fails
        pair.run("patients", on_progress=fail_after_two, writers=1)
    assert len(target_ids(pair, "patients")) == 14  # two batches of 7 committed
    assert_batches_atomic(pair, "patients")
    failed = pair.dst("SELECT count(*) FROM dbmig.audit_log WHERE operation = 'run_failed' AND entity = 'patients'")
    assert failed == [(1,)]

    retried = pair.run("patients")  # same run id: run-1
    assert retried.written == 6
    assert len(target_ids(pair, "patients")) == 20
    assert_no_duplicate_batches(pair)
    numbers = pair.dst("SELECT batch_no FROM dbmig.audit_log WHERE operation = 'batch_committed'"
                       " AND entity = 'patients' ORDER BY id")
    assert [n for (n,) in numbers] == list(range(1, len(numbers) + 1))


def test_an_interrupted_pass_says_so_where_status_and_the_audit_log_show_it(pair):
    """A cancelled Dagster run interrupts the pass with an exception outside `Exception` and no text:
    recorded as "DagsterExecutionInterruptedError: " it told the operator nothing."""
    _twenty_patients(pair)

    class Interrupted(BaseException):  # as Dagster's DagsterExecutionInterruptedError
        pass

    def interrupt_after_one(event):
        if event.batch_no == 1:
            raise Interrupted()

    with pytest.raises(Interrupted):
        pair.run("patients", on_progress=interrupt_after_one, writers=1)
    (error,), = pair.dst("SELECT details->>'error' FROM dbmig.audit_log"
                         " WHERE operation = 'run_failed' AND entity = 'patients'")
    assert error.startswith("interrupted (Interrupted): the run was cancelled or its process stopped"), error
    assert pair.dst("SELECT DISTINCT last_error FROM dbmig.migration_control WHERE entity = 'patients'"
                    " AND status = 'failed'") == [(error,)]
    pair.run("patients")
    assert len(target_ids(pair, "patients")) == 20


def test_a_full_pass_after_a_failed_differential_one_re_reads_the_whole_window(pair):
    """`--full` resumed the failed differential pass at its cursor: a row changed without a bump before
    that cursor (what a full pass is run for) was skipped. An interrupted full pass is still resumed."""
    _twenty_patients(pair)
    pair.run("patients")

    def fail_after_two(event):
        if event.batch_no == 2:
            raise TechnicalFailure("connection lost")

    pair.src("UPDATE public.patients SET updated_at = updated_at + interval '1 day'")  # all 20 bumped
    with pytest.raises(TechnicalFailure):  # the differential pass stops with a cursor past 14 of them
        pair.run("patients", mode=DIFFERENTIAL, run_id="run-diff", on_progress=fail_after_two, writers=1)
    pair.src("UPDATE public.patients SET last_name = 'Silent' WHERE id = 3")  # no bump, before the cursor
    full = pair.run("patients", mode=FULL, run_id="run-full")
    assert full.read == 20 and full.written == 7  # the 6 left by the failed pass and the silent change
    assert pair.dst("SELECT family_name FROM app.patients WHERE legacy_id = 3") == [("Silent",)]

    with pytest.raises(TechnicalFailure):  # a full pass that fails ...
        pair.run("patients", mode=FULL, run_id="run-full-2", on_progress=fail_after_two, writers=1)
    resumed = pair.run("patients", mode=FULL, run_id="run-full-3")  # ... is resumed by the next one
    assert resumed.read == 20 - 14


def test_checkpoints_every_n_batches_still_end_exact(pair):
    """With DBMIG_CHECKPOINT_EVERY > 1 the cursor is saved less often but the end state is the same."""
    seed_legacy(pair.source_url, scale=0.0003)
    for name in ENTITY_NAMES:
        pair.run(name, run_id="sparse", checkpoint_every=4)
    assert_target_matches_oracle(pair, list(ENTITY_NAMES))
    batches, saved = pair.dst(
        "SELECT count(*), count(*) FILTER (WHERE details->'cursor' <> 'null') FROM dbmig.audit_log "
        "WHERE operation IN ('batch_committed', 'checkpoint_saved') AND entity = 'orders'")[0]
    assert batches > saved >= 1  # several batches per saved checkpoint
    assert pair.dst("SELECT count(*) FROM dbmig.migration_control WHERE entity = 'orders' "
                    "AND status <> 'succeeded'")[0][0] == 0


# --- parallel writers ---------------------------------------------------------------------

def test_a_batch_committed_ahead_of_a_failing_older_one_never_moves_the_cursor_past_it(pair, monkeypatch):
    """Writers commit in any order; the saved cursor only covers batches that all committed, so the
    re-run reads the failed batch again and skips the one committed ahead of it by hash."""
    _twenty_patients(pair)
    second_committed = threading.Event()
    commit_batch = EntitySync._commit_batch

    def commit_and_tell(self, cur, checkpoint, *args):
        commit_batch(self, cur, checkpoint, *args)
        if checkpoint.seq == 1:
            second_committed.set()

    load_batch = EntitySync._load_batch

    def first_batch_fails_once_the_second_committed(self, frame, extra, *, checkpoint, **kwargs):
        if checkpoint is not None and checkpoint.seq == 0:
            assert second_committed.wait(30)
            raise RuntimeError("the first batch fails after the second committed")
        return load_batch(self, frame, extra, checkpoint=checkpoint, **kwargs)

    monkeypatch.setattr(EntitySync, "_commit_batch", commit_and_tell)
    monkeypatch.setattr(EntitySync, "_load_batch", first_batch_fails_once_the_second_committed)
    with pytest.raises(RuntimeError, match="first batch fails"):
        pair.run("patients", writers=2, batch_retries=0)
    assert len(target_ids(pair, "patients")) == 7  # the second batch only, committed ahead of the first
    saved = "SELECT count(*) FROM dbmig.migration_control WHERE entity = 'patients' AND cursor_id IS NOT NULL"
    assert pair.dst(saved) == [(0,)]  # no cursor saved: the first batch never committed
    assert_batches_atomic(pair, "patients")

    monkeypatch.undo()
    again = pair.run("patients", run_id="run-2")
    assert (again.read, again.written, again.unchanged) == (20, 13, 7)  # the early batch: skipped by hash
    assert_target_matches_oracle(pair, ["offices", "doctors", "patients"])
    assert pair.dst(saved)[0][0] >= 1


def test_parallel_writers_end_exactly_like_one(pair):
    seed_legacy(pair.source_url, scale=0.0003)
    for name in ENTITY_NAMES:
        pair.run(name, run_id="parallel", writers=3)
    assert_target_matches_oracle(pair, list(ENTITY_NAMES))
    for name in ENTITY_NAMES:
        assert_batches_atomic(pair, name)
    assert_no_duplicate_batches(pair)
    numbers = pair.dst("SELECT batch_no FROM dbmig.audit_log WHERE operation = 'batch_committed'"
                       " AND entity = 'orders' ORDER BY batch_no")
    assert [n for (n,) in numbers] == list(range(1, len(numbers) + 1))
