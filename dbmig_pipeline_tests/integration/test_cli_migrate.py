"""`dbmig migrate` / `status` on databases it did not create, recorded in the Dagster instance."""
import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine.pass_lock import entity_pass_lock
from dbmig_pipeline_tests.integration.test_cli_setup import run_dbmig


def _env(tmp_path, make_database):
    source = make_database("legacy")
    seed_legacy(source, scale=0.0005)
    return {
        "DBMIG_HOME": str(tmp_path),
        "DBMIG_SOURCE_URL": source,
        "DBMIG_DEST_URL": make_database("target"),
        "DAGSTER_PG_URL": make_database("dagster"),
        "DBMIG_BATCH_SIZE": "97",
    }


def _scalar(url, query):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def test_migrate_then_status_then_nothing_pending(tmp_path, make_database):
    env = _env(tmp_path, make_database)
    first = run_dbmig("migrate", "--json", env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    outcome = json.loads(first.stdout)
    by_entity = {e["entity"]: e for e in outcome["entities"]}
    assert all(e["ok"] for e in by_entity.values())
    source_patients = _scalar(env["DBMIG_SOURCE_URL"], "SELECT count(*) FROM public.patients")
    assert by_entity["patients"]["metadata"]["rows_read"] == source_patients
    assert _scalar(env["DBMIG_DEST_URL"], "SELECT count(*) FROM app.patients") == by_entity["patients"]["metadata"]["rows_written"]
    assert not (tmp_path / "pgdata").exists()  # nothing embedded started

    # The run is in the Dagster instance (visible in the UI).
    runs = _scalar(env["DAGSTER_PG_URL"], "SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
    assert runs == 1

    second = run_dbmig("migrate", "--json", env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    again = {e["entity"]: e["metadata"] for e in json.loads(second.stdout)["entities"]}
    assert sum(m["rows_written"] for m in again.values()) == 0

    status = run_dbmig("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    rows = {r["entity"]: r for r in json.loads(status.stdout)}
    assert rows["orders"]["last_outcome"] == "succeeded"
    assert rows["patients"]["target_rows"] == by_entity["patients"]["metadata"]["rows_written"]
    assert rows["orders"]["parked"] > 0 and rows["patients"]["quarantined"] > 0



def test_a_migrate_that_meets_a_running_pass_stops_that_entity_and_status_shows_the_pass(tmp_path, make_database):
    """Another pass of offices (here held by the test) runs while `dbmig migrate` is started by hand."""
    env = _env(tmp_path, make_database)
    dest = sa.create_engine(env["DBMIG_DEST_URL"])
    try:
        with entity_pass_lock(dest, "offices"):
            result = run_dbmig("migrate", "--json", env=env, timeout=300)
            shown = run_dbmig("status", env=env)
            status = run_dbmig("status", "--json", env=env)
    finally:
        dest.dispose()
    assert result.returncode == 1
    by_entity = {e["entity"]: e for e in json.loads(result.stdout)["entities"]}
    assert by_entity["offices"]["error"].startswith("offices: another pass of this entity is running "
                                                    "(destination session pid ")
    assert by_entity["doctors"]["error"] == "skipped: its parent offices did not finish in this run"
    assert by_entity["orders"]["error"] == "skipped: its parent patients did not finish in this run"
    assert by_entity["jaws"]["ok"] and by_entity["system_messages"]["ok"]
    assert _scalar(env["DBMIG_DEST_URL"], "SELECT count(*) FROM app.offices") == 0

    assert shown.returncode == 0, shown.stderr
    offices_line = next(line for line in shown.stdout.splitlines() if line.startswith("offices "))
    assert "a pass running now (destination session pid " in offices_line
    assert "running now" not in next(line for line in shown.stdout.splitlines() if line.startswith("jaws "))
    rows = {r["entity"]: r for r in json.loads(status.stdout)}
    assert rows["offices"]["running"]["pid"] > 0 and rows["jaws"]["running"] is None

    again = run_dbmig("migrate", "--json", env=env, timeout=300)  # the other pass ended
    assert again.returncode == 0, again.stderr
    assert all(e["ok"] for e in json.loads(again.stdout)["entities"])


def test_collision_fails_orders_only_with_the_legacy_ids(tmp_path, make_database):
    env = _env(tmp_path, make_database)
    engine = sa.create_engine(env["DBMIG_SOURCE_URL"])
    with engine.begin() as conn:
        a, b = conn.execute(sa.text("SELECT id FROM public.orders WHERE patient_id = 1 ORDER BY id LIMIT 2")).scalars()
        conn.execute(sa.text("UPDATE public.orders SET order_no = 'zz-777' WHERE id = :a"), {"a": a})
        conn.execute(sa.text("UPDATE public.orders SET order_no = ' ZZ-777 ' WHERE id = :b"), {"b": b})
    engine.dispose()
    result = run_dbmig("migrate", env=env, timeout=300)
    assert result.returncode == 1
    assert "orders" in result.stdout and "FAILED" in result.stdout
    assert f"legacy ids {min(a, b)}, {max(a, b)}" in result.stdout
    for entity in ("offices", "doctors", "patients", "jaws", "system_messages"):
        assert any(line.split()[:2] == [entity, "ok"] for line in result.stdout.splitlines()), result.stdout


def test_dagster_cli_materializes_one_partition_with_dbmig_env(tmp_path, make_database):
    """`eval "$(dbmig env)"` then Dagster's own CLI: one partition of one asset."""
    import os
    import shlex
    import subprocess
    import sys
    from datetime import UTC, datetime

    env = _env(tmp_path, make_database)
    exports = run_dbmig("env", env={**env, "DBMIG_PARTITION_START": "2024-01-01"})
    assert exports.returncode == 0, exports.stderr
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))}
    full_env.update(env, DBMIG_PARTITION_START="2024-01-01")
    for line in exports.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        full_env[name] = shlex.split(value)[0]
    assert "DAGSTER_HOME" in full_env and "DBMIG_SOURCE_URL" not in exports.stdout  # user-set: never echoed
    today = datetime.now(UTC).date().isoformat()
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dbmig_pipeline.definitions",
         "--select", "offices", "--partition", today],
        env=full_env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    offices = _scalar(env["DBMIG_DEST_URL"], "SELECT count(*) FROM app.offices")
    assert offices > 0
    assert _scalar(env["DAGSTER_PG_URL"], "SELECT count(*) FROM runs WHERE status = 'SUCCESS'") == 1


def test_a_version_the_guard_keeps_out_is_shown_and_reconcile_takes_the_source(tmp_path, make_database):
    """A row once dated in the future, then changed with a sane timestamp: the no-regression guard keeps
    the target's later-dated version. The run says so (it was silent) and reconcile writes the source's."""
    env = _env(tmp_path, make_database)
    assert run_dbmig("migrate", env=env, timeout=300).returncode == 0
    source = sa.create_engine(env["DBMIG_SOURCE_URL"])
    try:
        with source.begin() as conn:
            conn.execute(sa.text("UPDATE public.offices SET name = 'Future', updated_at = '2100-01-01' WHERE id = 1"))
        assert run_dbmig("migrate", env=env, timeout=300).returncode == 0
        with source.begin() as conn:
            conn.execute(sa.text("UPDATE public.offices SET name = 'Now', updated_at = now() WHERE id = 1"))
    finally:
        source.dispose()

    kept_out = run_dbmig("migrate", env=env, timeout=300)
    assert kept_out.returncode == 0, kept_out.stderr
    offices = next(line for line in kept_out.stdout.splitlines() if line.strip().startswith("offices"))
    assert "(1 not written: the target holds a version with a later updated_at; `dbmig reconcile`" in offices
    display = "SELECT display_name FROM app.offices WHERE legacy_id = 1"
    assert _scalar(env["DBMIG_DEST_URL"], display) == "Future"

    reconciled = run_dbmig("reconcile", "--entity", "offices", env=env, timeout=300)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert _scalar(env["DBMIG_DEST_URL"], display) == "Now"


def test_runs_of_killed_processes_give_their_source_slots_back(tmp_path, make_database, monkeypatch):
    """A `dbmig migrate` killed mid-run left its run STARTED and its slots of the source pool claimed:
    after three such crashes every later run waited for a slot for ever, silently. The next run fails
    the runs whose process is gone and frees every slot a finished run holds; a live one keeps its own."""
    import socket
    import subprocess
    import uuid

    import dagster as dg

    from dbmig_pipeline.assets import SOURCE_POOL
    from dbmig_pipeline.run_reaper import LAUNCHED_BY_CLI, PROCESS_TAG, _pid_namespace, _start_time

    env = _env(tmp_path, make_database)
    assert run_dbmig("migrate", "--json", env=env, timeout=300).returncode == 0  # the instance and its pool
    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = subprocess.Popen(["sleep", "300"])
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    host = socket.gethostname()
    try:
        with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
            def holding_a_slot(pid: int, status: dg.DagsterRunStatus) -> str:
                run_id = str(uuid.uuid4())
                instance.add_run(dg.DagsterRun(job_name="migrate_all", run_id=run_id, status=status, tags={
                    **LAUNCHED_BY_CLI, PROCESS_TAG: f"{host}:{_pid_namespace()}:{pid}:{_start_time(pid)}"}))
                instance.event_log_storage.claim_concurrency_slot(SOURCE_POOL, run_id, "patients")
                return run_id

            crashed = [holding_a_slot(gone.pid, dg.DagsterRunStatus.STARTED) for _ in range(2)]
            ended = holding_a_slot(gone.pid, dg.DagsterRunStatus.FAILURE)  # failed by hand, its slot kept
            running = holding_a_slot(alive.pid, dg.DagsterRunStatus.STARTED)  # every slot is taken: it waits
            result = run_dbmig("migrate", "--json", env=env, timeout=180)
            assert result.returncode == 0, result.stderr
            assert all(f"run {run_id} was left unfinished" in result.stderr for run_id in crashed)
            statuses = {run_id: instance.get_run_by_id(run_id).status for run_id in [*crashed, ended, running]}
            assert statuses == {**{r: dg.DagsterRunStatus.FAILURE for r in [*crashed, ended]},
                                running: dg.DagsterRunStatus.STARTED}
            info = instance.event_log_storage.get_concurrency_info(SOURCE_POOL)
            assert info.active_run_ids | info.assigned_run_ids | info.pending_run_ids == {running}
    finally:
        alive.kill()
        alive.wait()


def test_progress_reaches_a_log_that_is_not_a_terminal(tmp_path, make_database):
    """Under cron or CI nothing showed how a long run was going until it ended: with stderr not a
    terminal, each entity writes a timestamped progress line every PROGRESS_LINE_EVERY_S (0 here)."""
    import os
    import re
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))},
           **_env(tmp_path, make_database)}
    program = ("import sys, dbmig_pipeline.assets as assets; assets.PROGRESS_LINE_EVERY_S = 0; "
               "from dbmig_pipeline.cli import main; sys.argv = ['dbmig', 'migrate']; main()")
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    lines = re.findall(r"^\[\d\d:\d\d:\d\d\] patients: batch (\d+), ([\d,]+) of ([\d,]+) rows", result.stderr, re.M)
    patients = _scalar(env["DBMIG_SOURCE_URL"], "SELECT count(*) FROM public.patients")
    assert lines and lines[-1][1] == lines[-1][2] == f"{patients:,}", result.stderr


def test_migrate_full_without_a_range_re_reads_every_partition(tmp_path, make_database):
    """`--full` alone covered only the pending partitions (today's): a row changed without a bump and dated in
    an older one (what a full pass is run for) was not re-read."""
    today = datetime.now(UTC).date()
    env = {**_env(tmp_path, make_database), "DBMIG_PARTITION_START": (today - timedelta(days=3)).isoformat()}
    assert run_dbmig("migrate", "--json", env=env, timeout=300).returncode == 0
    source, dest = env["DBMIG_SOURCE_URL"], env["DBMIG_DEST_URL"]
    office = _scalar(source, "SELECT min(id) FROM public.offices WHERE updated_at < now() - interval '3 days'"
                             " AND btrim(name) <> ''")
    engine = sa.create_engine(source)
    with engine.begin() as conn:  # silently: updated_at stays as it was
        conn.execute(sa.text("UPDATE public.offices SET name = 'Quietly Renamed' WHERE id = :id"), {"id": office})
    engine.dispose()

    full = run_dbmig("migrate", "--full", "--json", env=env, timeout=300)
    assert full.returncode == 0, full.stderr
    outcome = json.loads(full.stdout)
    assert outcome["partitions"] == [(today - timedelta(days=3)).isoformat(), today.isoformat()]
    assert _scalar(dest, f"SELECT display_name FROM app.offices WHERE legacy_id = {office}") == "Quietly Renamed"
