"""Operating dbmig (README "Operating"): connections dropped mid-run are retried inside the batch, a source
that stays down fails with a clear message, `dbmig errors retry` loads rows after their source fix, the audit
log is append-only except for `dbmig prune`, which removes old detail and keeps summaries."""
from __future__ import annotations

import getpass
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2 import sql

from dbmig_pipeline.db import create_db_engine
from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine.commit_fate import CommitFate
from dbmig_pipeline.engine.errors import BatchFailed, is_technical
from dbmig_pipeline.engine.partitions import partitions_for
from dbmig_pipeline.engine.progress import ProgressEvent
from dbmig_pipeline.engine.sync import FULL, EntitySync, RunInfo, SyncStats, sync_entity
from dbmig_pipeline.settings import Settings
from dbmig_pipeline_tests.integration.engine_helpers import (
    SPECS,
    Pair,
    assert_target_matches_oracle,
    execute,
    insert,
    open_errors,
    pair_fixture,  # noqa: F401 (the `pair` fixture)
    target_ids,
)
from dbmig_pipeline_tests.integration.test_cli_setup import run_dbmig
from dbmig_pipeline_tests.integration.test_engine_resume import (
    assert_batches_atomic,
    assert_no_duplicate_batches,
)

PARENTS_OF_PATIENTS = ("offices", "doctors")
LOADED = ("offices", "doctors", "patients")
OLD = datetime(2019, 3, 1, tzinfo=UTC)


@pytest.fixture(name="pooled")
def pooled_fixture(pair: Pair, tmp_path) -> Iterator[Pair]:
    """The `pair` with demo data, seen through engines built as dbmig builds them: pooled, with the
    application names `dbmig-source` / `dbmig-dest` that an operator (and these tests) can find them by."""
    seed_legacy(pair.source_url, scale=0.0005)  # 750 patients: 15 batches of 50
    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": pair.source_url,
                                  "DBMIG_DEST_URL": pair.dest_url, "DAGSTER_PG_URL": pair.dest_url})
    source = create_db_engine(pair.source_url, settings.source, settings, read_only=True, purpose="source")
    dest = create_db_engine(pair.dest_url, settings.dest, settings, read_only=False, purpose="dest")
    yield Pair(pair.source_url, pair.dest_url, source, dest)
    source.dispose()
    dest.dispose()


def run(pair: Pair, entity: str, *, retries: int = 3, on_progress=None) -> SyncStats:
    return sync_entity(pair.source, pair.dest, SPECS[entity], SPECS, partitions_for(pair.keys, pair.keys), pair.keys,
                       RunInfo("run-ops", "pytest", mode=FULL, batch_size=50, batch_retries=retries), on_progress)


def terminate(admin: Pair, application: str) -> int:
    """Drop every server connection of `application`, as a failover or a DBA would; returns how many."""
    return execute(admin.dest, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE application_name = :app", app=application)[0][0]


def retried_batches(pair: Pair, entity: str) -> list[dict]:
    rows = pair.dst("SELECT details FROM dbmig.audit_log WHERE operation = 'batch_retried' AND entity = :e", e=entity)
    return [details for (details,) in rows]


@pytest.mark.parametrize(("side", "steps"), [("source", {"source read"}),
                                             ("dest", {"ledger read", "destination write"})])
def test_a_connection_dropped_mid_run_is_retried_in_the_batch_and_the_target_is_exact(pair, pooled, side, steps):
    for entity in PARENTS_OF_PATIENTS:
        run(pooled, entity)
    killed: list[int] = []

    def drop_connections_after_batch_2(event: ProgressEvent) -> None:
        if event.batch_no == 2 and not killed:
            killed.append(terminate(pair, f"dbmig-{side}"))

    stats = run(pooled, "patients", on_progress=drop_connections_after_batch_2)

    assert killed and killed[0] >= 2  # the pass's own connection and its reader's
    assert stats.read == pair.src("SELECT count(*) FROM public.patients")[0][0] and stats.batches >= 15
    retried = retried_batches(pair, "patients")
    assert retried and {r["step"] for r in retried} <= steps, retried
    assert all(r["failed_attempts"] >= 1 and r["error"] for r in retried)
    assert_target_matches_oracle(pair, LOADED)
    assert_batches_atomic(pair, "patients")
    assert_no_duplicate_batches(pair)


ANSWER_LOST, NEVER_ARRIVED, LEFT_OPEN = "answer lost", "never arrived", "session left open"


class _CommitFault:
    """A connection whose COMMIT fails as a dropped connection makes it fail, in one of three ways:
    the server committed but its answer was lost (the batch is in, and the client cannot know it);
    the COMMIT never reached a server that has since rolled back; or it never reached a server whose
    session is still open (cut off by the network): nothing the client does reaches it any more."""

    def __init__(self, conn, fault: str):
        self._conn, self._fault = conn, fault

    def commit(self) -> None:
        if self._fault == ANSWER_LOST:
            self._conn.commit()
        elif self._fault == NEVER_ARRIVED:
            self._conn.rollback()
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    def rollback(self) -> None:
        if self._fault != LEFT_OPEN:
            self._conn.rollback()

    def invalidate(self) -> None:
        if self._fault != LEFT_OPEN:
            self._conn.invalidate()

    def close(self) -> None:
        if self._fault != LEFT_OPEN:
            self._conn.close()

    def __getattr__(self, name):
        return getattr(self._conn, name)


def assert_counted_once(pair: Pair, entity: str, stats: SyncStats) -> None:
    """migration_control's counters add up to what the pass did, each row once."""
    read, written = pair.dst("SELECT sum(rows_read), sum(rows_written) FROM dbmig.migration_control"
                             " WHERE entity = :e", e=entity)[0]
    assert (read, written) == (stats.read, stats.written), entity
    assert written == len(target_ids(pair, entity)), entity


def _fail_commit(monkeypatch, seq: int, fault: str, *, ahead: bool) -> list:
    """The COMMIT of scan batch `seq` fails with `fault`. Without `ahead` it commits after the batches
    before it; with `ahead` (two writers) batch seq - 1 waits until then, so that batch `seq` commits
    before it, and batch `seq`'s retry asks about its COMMIT only once batch seq - 1 has committed:
    the retry must fit it in after the fact. Returns [the pass's next batch in order when the COMMIT
    went out, the real connection, its session's pid]."""
    commit_batch, went_through = EntitySync._commit_batch, CommitFate.went_through
    failed: list = []
    older_may_commit, older_committed = threading.Event(), threading.Event()

    def commit(self, cur, checkpoint, progress, *args):
        if ahead and checkpoint.seq == seq - 1:
            assert older_may_commit.wait(30), f"batch {seq} never committed"
            commit_batch(self, cur, checkpoint, progress, *args)
            older_committed.set()
            return None
        if checkpoint.seq == seq and not failed:
            deadline = time.monotonic() + 30
            while not ahead and self._next_seq != seq:  # the batches before it commit first
                assert time.monotonic() < deadline, f"the batches before {seq} never committed"
                time.sleep(0.005)
            failed.extend([self._next_seq, self.dst, self.dst.dbapi_connection.get_backend_pid()])
            self.dst = _CommitFault(self.dst, fault)
            try:
                return commit_batch(self, cur, checkpoint, progress, *args)
            finally:
                older_may_commit.set()
        return commit_batch(self, cur, checkpoint, progress, *args)

    def ask_once_the_older_committed(fate, conn):
        if fate.xid is not None:
            assert older_committed.wait(30), f"batch {seq - 1} never committed"
        return went_through(fate, conn)

    monkeypatch.setattr(EntitySync, "_commit_batch", commit)
    if ahead:
        monkeypatch.setattr(CommitFate, "went_through", ask_once_the_older_committed)
    return failed


@pytest.mark.parametrize(("writers", "ahead", "fault"), [
    (1, False, ANSWER_LOST), (2, False, ANSWER_LOST), (2, True, ANSWER_LOST), (2, False, NEVER_ARRIVED),
    (2, False, LEFT_OPEN)], ids=["answer lost, one writer", "answer lost, two writers in order",
                                 "answer lost, two writers, ahead of order", "never arrived", "session left open"])
def test_a_batch_whose_commit_got_no_answer_is_applied_exactly_once(pair, pooled, monkeypatch, caplog,
                                                                     writers, ahead, fault):
    for entity in PARENTS_OF_PATIENTS:
        run(pooled, entity)
    failed = _fail_commit(monkeypatch, 2, fault, ahead=ahead)

    try:
        stats = sync_entity(pooled.source, pooled.dest, SPECS["patients"], SPECS,
                            partitions_for(pair.keys, pair.keys), pair.keys,
                            RunInfo("run-ops", "pytest", mode=FULL, batch_size=50, writers=writers))
    finally:
        if failed and fault == LEFT_OPEN and failed[1].dbapi_connection is not None:
            failed[1].invalidate()  # the one connection nothing else closed

    assert failed[0] == (1 if ahead else 2)  # the pass's next batch in order when the COMMIT went out
    assert stats.read == pair.src("SELECT count(*) FROM public.patients")[0][0]
    assert [r["step"] for r in retried_batches(pair, "patients")] == ["destination write"]
    assert_counted_once(pair, "patients", stats)
    assert ("its COMMIT went through although the connection dropped" in caplog.text) is (fault == ANSWER_LOST)
    if fault == LEFT_OPEN:  # the retry ended the session that held the batch's transaction
        assert pair.dst("SELECT count(*) FROM pg_stat_activity WHERE pid = :p", p=failed[2]) == [(0,)]
    assert_target_matches_oracle(pair, LOADED)
    assert_batches_atomic(pair, "patients")  # one audit row for the batch
    assert_no_duplicate_batches(pair)


def test_an_unacknowledged_commit_of_the_last_checkpoint_is_not_saved_twice(pair, pooled, monkeypatch):
    """With checkpoints every 4th batch the pass's end saves the rest; its COMMIT's answer is lost."""
    for entity in PARENTS_OF_PATIENTS:
        run(pooled, entity)
    finish = EntitySync._finish
    lost: list[bool] = []

    def finish_unacknowledged(self, fate):
        if not lost:
            lost.append(bool(self._pending_progress))
            self.dst = _CommitFault(self.dst, ANSWER_LOST)
        return finish(self, fate)

    monkeypatch.setattr(EntitySync, "_finish", finish_unacknowledged)
    run_info = RunInfo("run-ops", "pytest", mode=FULL, batch_size=50, checkpoint_every=4)
    stats = sync_entity(pooled.source, pooled.dest, SPECS["patients"], SPECS, partitions_for(pair.keys, pair.keys),
                        pair.keys, run_info)

    assert lost == [True] and stats.batches % 4  # progress was left for the end
    assert [r["step"] for r in retried_batches(pair, "patients")] == ["destination write"]
    assert pair.dst("SELECT count(*) FROM dbmig.audit_log WHERE operation = 'run_finished'"
                    " AND entity = 'patients'")[0][0] == 1
    assert_counted_once(pair, "patients", stats)


def _allow_connections(pair: Pair, allowed: bool) -> None:
    name = sa.engine.make_url(pair.source_url).database
    raw = pair.dest.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.Literal(allowed)))
        raw.commit()
    finally:
        raw.close()


def test_a_source_that_stays_down_fails_the_batch_clearly_after_its_retries_and_the_next_run_resumes(pair, pooled):
    for entity in PARENTS_OF_PATIENTS:
        run(pooled, entity)

    def source_down_after_batch_2(event: ProgressEvent) -> None:
        if event.batch_no == 2:
            _allow_connections(pair, False)
            terminate(pair, "dbmig-source")

    try:
        with pytest.raises(BatchFailed) as failed:
            run(pooled, "patients", retries=1, on_progress=source_down_after_batch_2)
    finally:
        _allow_connections(pair, True)
    message = str(failed.value)
    assert is_technical(failed.value)  # so Dagster's RetryPolicy retries the step
    assert message.startswith("patients, partitions ")
    assert "batch " in message and "legacy ids after " in message and "source read" in message
    assert "failed 2 times" in message and "DBMIG_SOURCE_URL" in message and "resumes" in message
    assert isinstance(failed.value.__cause__, (psycopg2.Error, sa.exc.DBAPIError))
    committed = len(target_ids(pair, "patients"))
    assert 100 <= committed < 750  # batches 1, 2 and perhaps the one already read ahead
    assert_batches_atomic(pair, "patients")
    recorded = pair.dst("SELECT details->>'error' FROM dbmig.audit_log WHERE operation = 'run_failed'")
    assert recorded and "source read" in recorded[0][0]

    run(pooled, "patients")  # the source is back: the next run resumes from the checkpoint
    assert_target_matches_oracle(pair, LOADED)
    assert_no_duplicate_batches(pair)


def test_migrate_with_the_source_down_at_start_exits_2_naming_the_variable(tmp_path, make_database):
    started = time.monotonic()
    result = run_dbmig("migrate", env={
        "DBMIG_HOME": str(tmp_path),
        "DBMIG_SOURCE_URL": "postgresql://migrator:TopSecret99@127.0.0.1:1/legacy",
        "DBMIG_DEST_URL": make_database("dest"),
        "DAGSTER_PG_URL": make_database("dagster"),
        "DBMIG_CONNECT_RETRIES": "1",
    })
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 60
    assert "DBMIG_SOURCE_URL" in result.stderr and "after 2 attempts" in result.stderr
    assert "TopSecret99" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# --- the quarantine ------------------------------------------------------------------------------

def _small_source(pair: Pair) -> None:
    """Patient 2 has status 7 (quarantined, business_rule); its order 2 is parked; order 3 of patient 1 loads."""
    insert(pair, "offices", [{"created_at": OLD, "updated_at": OLD, "name": "Office", "is_active": True}])
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": OLD, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "GP", "is_active": True}])
    insert(pair, "patients", [{"created_at": OLD, "updated_at": OLD, "doctor_id": 1, "first_name": "Pat",
                               "last_name": f"P{i}", "status": 7 if i == 2 else 1} for i in (1, 2)])
    insert(pair, "orders", [{"created_at": OLD, "updated_at": OLD, "patient_id": p, "order_no": f"o-{i}",
                             "status": "draft", "price": 10} for i, p in ((1, 1), (2, 2), (3, 1))])


def test_errors_lists_the_held_rows_and_errors_retry_loads_them_after_the_source_fix(pair, tmp_path, make_database):
    _small_source(pair)
    pair.run_all()
    assert open_errors(pair) == {("patients", 2): "business_rule", ("orders", 2): "missing_parent"}
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": pair.source_url, "DBMIG_DEST_URL": pair.dest_url,
           "DAGSTER_PG_URL": make_database("dagster")}

    listed = run_dbmig("errors", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["rows"]
    assert [(r["entity"], r["legacy_id"], r["category"], r["attempts"], r["resolved_at"]) for r in rows] == [
        ("patients", 2, "business_rule", 1, None), ("orders", 2, "missing_parent", 1, None)]  # parents first
    assert "status" in rows[0]["detail"]
    assert [(r["missing_parent_entity"], r["missing_parent_id"]) for r in rows] == [(None, None), ("patients", 2)]
    only = json.loads(run_dbmig("errors", "--category", "missing_parent", "--json", env=env).stdout)["rows"]
    assert [(r["entity"], r["legacy_id"]) for r in only] == [("orders", 2)]

    # Retrying before the fix changes nothing (and says so).
    before = run_dbmig("errors", "retry", "--entity", "patients", env=env)
    assert before.returncode == 0, before.stderr
    assert "loaded      0" in before.stdout and "still held (business_rule): legacy ids 2" in before.stdout

    # The source is fixed without bumping updated_at: no differential sync would see it.
    pair.src("UPDATE public.patients SET status = 1 WHERE id = 2")
    fixed = run_dbmig("errors", "retry", "--entity", "patients", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert "resolved (loaded): legacy ids 2" in fixed.stdout
    assert 2 in target_ids(pair, "patients")
    resolved = pair.dst("SELECT resolved_at IS NOT NULL, attempts FROM dbmig.row_errors"
                        " WHERE entity = 'patients' AND legacy_id = 2")
    assert resolved == [(True, 2)]  # marked, never deleted
    assert open_errors(pair) == {("orders", 2): "missing_parent"}  # its order waits for an orders retry or run

    children = run_dbmig("errors", "retry", env=env)  # every entity, parents first
    assert children.returncode == 0, children.stderr
    assert "orders" in children.stdout and "resolved (loaded): legacy ids 2" in children.stdout
    assert open_errors(pair) == {}
    assert_target_matches_oracle(pair)

    history = json.loads(run_dbmig("errors", "--all", "--json", env=env).stdout)["rows"]
    assert len(history) == 2 and all(r["resolved_at"] for r in history)
    audited = pair.dst("SELECT entity, operator, details FROM dbmig.audit_log"
                       " WHERE operation = 'errors_retry' AND level = 'summary' ORDER BY id")
    assert [(e, o) for e, o, _ in audited] == [("patients", getpass.getuser())] * 2 + [(None, getpass.getuser())]
    assert audited[1][2]["outcomes"] == {"patients": {"retried": 1, "loaded": 1, "still_open": 0}}


# --- the audit log -------------------------------------------------------------------------------

def _audit_rows(pair: Pair) -> list[tuple[str, str]]:
    return pair.dst("SELECT operation, level FROM dbmig.audit_log ORDER BY id")


def test_the_audit_log_is_append_only_for_the_product_except_detail_pruning(pair, pooled):
    run(pooled, "offices")
    before = _audit_rows(pair)
    assert ("batch_committed", "detail") in before and ("run_finished", "summary") in before
    statements = [
        "UPDATE dbmig.audit_log SET operator = 'someone else'",
        "DELETE FROM dbmig.audit_log WHERE level = 'summary'",
        "DELETE FROM dbmig.audit_log WHERE level = 'detail'",
    ]
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only|insufficient|permission") as refused:
            execute(pooled.dest, statement)
        assert not is_technical(refused.value), statement
    # the pruning switch (set only inside dbmig.prune_audit_detail) opens detail rows, never summaries
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), pooled.dest.begin() as conn:
        conn.exec_driver_sql("SET LOCAL dbmig.pruning = 'on'")
        conn.exec_driver_sql("DELETE FROM dbmig.audit_log WHERE level = 'summary'")
    assert _audit_rows(pair) == before


def test_prune_removes_old_detail_and_keeps_summaries(pair, tmp_path, make_database):
    execute(pair.dest, "INSERT INTO dbmig.audit_log (at, operation, level, entity) VALUES"
                       " (now() - interval '100 days', 'batch_committed', 'detail', 'old detail'),"
                       " (now() - interval '100 days', 'run_finished', 'summary', 'old summary'),"
                       " (now() - interval '10 days', 'batch_committed', 'detail', 'recent detail'),"
                       " (now() - interval '30 hours', 'rows_deleted', 'detail', 'last day detail')")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": pair.source_url, "DBMIG_DEST_URL": pair.dest_url,
           "DAGSTER_PG_URL": make_database("dagster")}

    for wrong in ("90", "90m", "0d", "-5d", "1.5d"):
        refused = run_dbmig("prune", "--older-than", wrong, env=env)
        assert refused.returncode == 2 and "90d or 36h" in refused.stderr, (wrong, refused.stderr)

    pruned = run_dbmig("prune", "--older-than", "90d", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 audit detail row(s) older than 90d" in pruned.stdout
    left = pair.dst("SELECT entity FROM dbmig.audit_log WHERE entity IS NOT NULL ORDER BY id")
    assert left == [("old summary",), ("recent detail",), ("last day detail",)]
    record = pair.dst("SELECT level, operator, details FROM dbmig.audit_log WHERE operation = 'audit_pruned'")
    assert record == [("summary", getpass.getuser(), {"older_than": "90d", "removed": 1})]

    hours = run_dbmig("prune", "--older-than", "24h", env=env)
    assert hours.returncode == 0, hours.stderr
    assert "removed 2 " in hours.stdout
    left = pair.dst("SELECT entity FROM dbmig.audit_log WHERE entity IS NOT NULL ORDER BY id")
    assert left == [("old summary",)]
    assert pair.dst("SELECT count(*) FROM dbmig.audit_log WHERE operation = 'audit_pruned'") == [(2,)]
