"""Runs launched the way the daemon launches them (schedules, sensors, backfills, the UI) check the configuration
as the `dbmig` commands do, once, before any step: a wrong one fails the run with the command's message, and
nothing is written to the target.

Real roles and databases on the session's embedded server, the job's own multiprocess executor
(`execute_job` of the reconstructable job, as a run worker executes it).
"""
import sys

import dagster as dg
import pytest
from psycopg2 import sql

from dbmig_pipeline.definitions import build_definitions
from dbmig_pipeline.reconciliation import RECONCILE_JOB
from dbmig_pipeline.sensors import RUN_FAILURE_SENSOR
from dbmig_pipeline_tests.integration.test_automation import (  # noqa: F401 (fixtures)
    RANGE_END, RANGE_START, _exec, _rows, env, migration_job, step_forkserver)
from dbmig_pipeline_tests.integration.test_startup_access import PASSWORD, _as, _role, _schemas, _sql

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="steps fork from a forkserver on Linux only")


def reconcile_job() -> dg.JobDefinition:
    """`reconcile_all` as a run worker rebuilds it (module scope: the step processes import it)."""
    return build_definitions().resolve_job_def(RECONCILE_JOB)


def _launch_like_the_daemon(env, job_fn=migration_job):
    keys = env.all_keys()
    with dg.execute_job(dg.reconstructable(job_fn), instance=env.instance,
                        tags={RANGE_START: keys[0], RANGE_END: keys[-1]}) as result:
        steps_started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
        return result.success, result.run_id, steps_started


def _evaluate_failure_sensor_on(env, run_id):
    """The run-failure sensor, as the daemon evaluates it after the run failed."""
    failure = next(iter(env.instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE))).dagster_event
    sensor = env.defs.resolve_sensor_def(RUN_FAILURE_SENSOR)
    with dg.build_run_status_sensor_context(
            sensor_name=RUN_FAILURE_SENSOR, dagster_event=failure, dagster_instance=env.instance,
            dagster_run=env.instance.get_run_by_id(run_id), resources=env.resources).for_run_failure() as context:
        sensor(context)


def _run_text(env, run_id) -> str:
    """Everything the run recorded: its log lines, its events' messages and their errors, causes included."""
    parts = []
    for entry in env.instance.all_logs(run_id):
        parts.append(entry.user_message or "")
        event = entry.dagster_event
        error = event.job_failure_data.error if event and event.is_job_failure and event.job_failure_data else None
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def _contents(url) -> dict:
    """Every table of `app` and `dbmig`: its row count and a digest of its rows."""
    tables = [t for (t,) in _rows(url, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                                       "WHERE schemaname IN ('app', 'dbmig') ORDER BY 1")]
    return {t: tuple(_rows(url, f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))"
                                f" FROM {t} x")[0]) for t in tables}


def test_a_daemon_run_whose_source_role_cannot_read_a_legacy_table_fails_before_any_step(
        env, step_forkserver, monkeypatch):
    assert env.migrate().success  # a target in use: control rows, snapshots, audit rows, app rows
    _exec(env.source_url, "UPDATE public.offices SET name = name || ' (moved)', updated_at = now()"
                          " WHERE id = (SELECT min(id) FROM public.offices)")  # a change a run would write
    role = _role(env.source_url, "nojaws")
    _sql(env.source_url, sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {0}; "
                                 "REVOKE SELECT ON public.jaws FROM {0}").format(sql.Identifier(role)))
    before = _contents(env.dest_url)
    monkeypatch.setenv("DBMIG_SOURCE_URL", _as(env.source_url, role))

    ok, run_id, steps_started = _launch_like_the_daemon(env)

    assert _contents(env.dest_url) == before
    text = _run_text(env, run_id)
    for needle in ("DBMIG_SOURCE_URL", f"role '{role}'", "it lacks SELECT on public.jaws.",
                   f'GRANT SELECT ON TABLE "public"."jaws" TO "{role}";', "`dbmig grants`"):
        assert needle in text, (needle, text)
    assert PASSWORD not in text
    assert not ok and steps_started == []


@pytest.mark.parametrize("job_fn", [migration_job, reconcile_job], ids=["migrate_all", "reconcile_all"])
def test_a_daemon_run_whose_source_and_destination_are_one_database_fails_before_any_step(
        env, step_forkserver, monkeypatch, job_fn):
    assert _schemas(env.source_url) == []
    monkeypatch.setenv("DBMIG_DEST_URL", env.source_url)

    ok, run_id, steps_started = _launch_like_the_daemon(env, job_fn)

    assert _schemas(env.source_url) == []  # no app, no dbmig: no control, audit or snapshot rows in the legacy database
    _evaluate_failure_sensor_on(env, run_id)  # the alert of the failed run: not written there either
    assert _schemas(env.source_url) == []
    text = _run_text(env, run_id)
    for needle in ("DBMIG_SOURCE_URL and DBMIG_DEST_URL reach the same database",
                   "Point DBMIG_DEST_URL at the new system's database"):
        assert needle in text, (needle, text)
    assert not ok and steps_started == []
