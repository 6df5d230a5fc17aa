"""Schedule, sensors and the instance's concurrency settings, on real databases and a real Dagster instance."""
import json
import multiprocessing.forkserver
import os
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from dbmig_pipeline.concurrency import STEP_PRELOAD
from dbmig_pipeline.db import resolve_endpoints
from dbmig_pipeline.definitions import MIGRATION_JOB, build_definitions
from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.entities import ENTITY_NAMES
from dbmig_pipeline.instance import prepare_dagster_home
from dbmig_pipeline.reconciliation import RECONCILE_JOB
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.run_queue import CODE_LOCATION, entity_tags
from dbmig_pipeline.run_start import CHECKED
from dbmig_pipeline.schedules import SYNC_SCHEDULE
from dbmig_pipeline.sensors import RUN_FAILURE_SENSOR, SOURCE_CHANGE_SENSOR
from dbmig_pipeline.settings import Settings

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
_EXPORTED = ("DAGSTER_HOME", "DAGSTER_PG_URL", "DBMIG_SOURCE_URL", "DBMIG_DEST_URL", "DBMIG_HOME",
             "DBMIG_PARTITION_START", "DBMIG_ALERT_WEBHOOK_URL", "DBMIG_CONNECT_RETRIES", "DBMIG_CONNECT_TIMEOUT")


@dataclass
class Env:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    source_url: str
    dest_url: str

    @property
    def resources(self):
        return {"source_db": SourceDatabase(), "dest_db": DestinationDatabase()}

    def all_keys(self) -> list[str]:
        return self.defs.resolve_job_def(MIGRATION_JOB).partitions_def.get_partition_keys()

    def migrate(self, keys=None):
        keys = keys or self.all_keys()
        return self.defs.resolve_job_def(MIGRATION_JOB).execute_in_process(
            instance=self.instance, raise_on_error=False, tags={RANGE_START: keys[0], RANGE_END: keys[-1]})


def _exec(url, statement, **params):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def _rows(url, query, **params):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params).all()
    finally:
        engine.dispose()


@pytest.fixture
def env(tmp_path, make_database, monkeypatch):
    for name in _EXPORTED:  # recorded first, so what prepare_dagster_home exports into os.environ is undone
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    source, dest = make_database("legacy"), make_database("target")
    seed_legacy(source, scale=0.0005)
    monkeypatch.setenv("DBMIG_HOME", str(tmp_path))
    monkeypatch.setenv("DBMIG_SOURCE_URL", source)
    monkeypatch.setenv("DBMIG_DEST_URL", dest)
    monkeypatch.setenv("DAGSTER_PG_URL", make_database("dagster"))
    monkeypatch.setenv("DBMIG_PARTITION_START", (datetime.now(UTC).date() - timedelta(days=3)).isoformat())
    settings = Settings.from_env()
    prepare_dagster_home(settings, resolve_endpoints(settings))
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(settings.dagster_home)))
    try:
        yield Env(settings, build_definitions(settings), instance, source, dest)
    finally:
        instance.dispose()


def test_instance_yaml_limits_the_source_pool_and_one_run_per_entity(env):
    config = env.instance.get_concurrency_config()
    assert config.pool_config.default_pool_limit == 3
    limits = {limit["key"]: limit["limit"] for limit in config.run_queue_config.tag_concurrency_limits}
    job_tags = env.defs.resolve_job_def(MIGRATION_JOB).tags
    entity_tags = {key for key in job_tags if key.startswith("dbmig/entity.")}
    assert len(entity_tags) == 6 and all(limits[key] == 1 for key in entity_tags)
    assert config.run_queue_config.max_concurrent_runs == 4


def _origin(job_def: dg.JobDefinition, location: str = CODE_LOCATION) -> RemoteJobOrigin:
    """Where a queued run's job comes from (the queue requires one): a code location loaded in process,
    this one unless `location` names another."""
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="dbmig_pipeline.definitions"),
                                         location_name=location)
    return RemoteJobOrigin(RemoteRepositoryOrigin(origin, "__repository__"), job_def.name)


@pytest.mark.parametrize("job,assets,entities,location", [
    (None, ["patients"], ["patients"], CODE_LOCATION),  # Materialize in the asset graph: the implicit asset job
    (None, ["offices", "orders"], ["offices", "orders"], CODE_LOCATION),  # a backfill of two entities
    (RECONCILE_JOB, None, list(ENTITY_NAMES), CODE_LOCATION),  # the repair takes every entity's pass lock in turn
    (None, [], [], CODE_LOCATION),  # a check alone migrates nothing
    # Another team's location on the same instance: its assets called orders, its asset-less jobs, are not dbmig's
    (None, ["orders"], [], "billing"),
    (RECONCILE_JOB, None, [], "billing"),
])
def test_every_queued_run_carries_the_tags_of_the_entities_it_migrates(env, job, assets, entities, location):
    """Not only migrate_all's runs: dagster.yaml's one-run-per-entity limits hold a run of the asset graph
    behind a sync of the same entity, instead of both starting and one failing on the entity's pass lock.
    Runs of other code locations keep their own tags: they would otherwise queue behind dbmig's syncs."""
    job_def = env.defs.resolve_job_def(job) if job else env.defs.resolve_implicit_global_asset_job_def()
    selection = None if assets is None else frozenset(dg.AssetKey(name) for name in assets)
    run = env.instance.create_run_for_job(job_def=job_def, asset_selection=selection,
                                          status=dg.DagsterRunStatus.NOT_STARTED,
                                          remote_job_origin=_origin(job_def, location))
    env.instance.run_coordinator.submit_run(dg.SubmitRunContext(run, workspace=None))
    tags = env.instance.get_run_by_id(run.run_id).tags
    assert {key for key in tags if key.startswith("dbmig/entity.")} == set(entity_tags(entities))


# Each step changes the source (or not), then evaluates the sensor with the cursor the step before left.
SENSOR_STEPS = [
    ("first look: everything is new", None,
     ["offices", "doctors", "patients", "orders", "jaws", "system_messages"], False),
    ("nothing changed", None, None, False),
    ("a patient edited", "UPDATE public.patients SET notes = 'edited', updated_at = (SELECT max(updated_at)"
     " FROM public.patients) + interval '1 second' WHERE id = (SELECT min(id) FROM public.patients)",
     ["patients", "orders"], False),
    ("the same again: nothing newer", None, None, False),
    ("a jaw edited", "UPDATE public.jaws SET updated_at = (SELECT max(updated_at) FROM public.jaws)"
     " + interval '1 second' WHERE id = (SELECT min(id) FROM public.jaws)", ["jaws"], False),
    ("a system message without a timestamp", "INSERT INTO public.system_messages (created_at, updated_at, severity, "
     "code, body) VALUES (now(), NULL, 'info', 'T1', 'no timestamp')", ["system_messages"], True),
    ("quiet again", None, None, False),
]


def _steps(env, request) -> set[str]:
    """The steps of the run a request launches: `migrate_all` subset to its assets and checks, as the daemon
    does."""
    checks = None if request.asset_check_keys is None else set(request.asset_check_keys)
    subset = env.defs.resolve_job_def(MIGRATION_JOB).get_subset(asset_selection=set(request.asset_selection),
                                                                 asset_check_selection=checks)
    return {node.name for node in subset.graph.nodes}


def _synced_with_drift_checks(entities) -> set[str]:
    """A sync's steps: the entities and their schema-drift checks, never the full-table reconciliation ones."""
    return {*entities, *(f"{name}_schema_drift" for name in entities)}


def _tick(sensor, env, cursor=None):
    with dg.build_sensor_context(cursor=cursor, instance=env.instance, resources=env.resources) as context:
        return sensor(context)


def test_source_change_sensor_requests_a_run_only_after_a_change(env):
    sensor = env.defs.resolve_sensor_def(SOURCE_CHANGE_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    keys = env.all_keys()
    cursor = None
    for label, change, expected, full in SENSOR_STEPS:
        if change:
            _exec(env.source_url, change)
        result = _tick(sensor, env, cursor)
        if expected is None:
            assert isinstance(result, dg.SensorResult) and result.skip_reason and not result.run_requests, label
        else:
            assert isinstance(result, dg.SensorResult) and len(result.run_requests) == 1, label
            request = result.run_requests[0]
            assert [k.to_user_string() for k in request.asset_selection] == expected, label
            assert _steps(env, request) == _synced_with_drift_checks(expected), label
            assert (request.tags.get("dbmig/full") == "true") == full, label
            # Nothing is migrated here, so every entity has all its partitions pending.
            assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (keys[0], keys[0] if full else keys[-1])
            again = _tick(sensor, env, cursor)
            assert again.run_requests[0].run_key == request.run_key, f"{label}: run key not deterministic"
        cursor = result.cursor
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


@pytest.mark.parametrize("ahead", ["now() + interval '2 years'", "'infinity'", "'20201-05-03 00:00+00'"])
def test_source_change_sensor_sees_an_edit_stamped_now_while_a_row_is_dated_in_the_future(env, ahead):
    """One row dated after the source's clock (a typo, `infinity`, a year Python cannot hold) must not hide
    every later edit until then, nor stop the sensor."""
    sensor = env.defs.resolve_sensor_def(SOURCE_CHANGE_SENSOR)
    _exec(env.source_url, f"UPDATE public.jaws SET updated_at = {ahead} WHERE id = (SELECT max(id) FROM public.jaws)")
    cursor = _tick(sensor, env).cursor
    assert not _tick(sensor, env, cursor).run_requests
    _exec(env.source_url, "UPDATE public.jaws SET teeth = 'edited', updated_at = now() "
                          "WHERE id = (SELECT min(id) FROM public.jaws)")
    result = _tick(sensor, env, cursor)
    assert [[k.to_user_string() for k in r.asset_selection] for r in result.run_requests] == [["jaws"]]


def test_source_change_sensor_waits_while_a_sync_is_queued(env):
    sensor = env.defs.resolve_sensor_def(SOURCE_CHANGE_SENSOR)
    job = env.defs.resolve_job_def(MIGRATION_JOB)
    # Submitted, not yet started (a QUEUED run needs a code location origin; both count as waiting).
    queued = env.instance.create_run_for_job(job_def=job, status=dg.DagsterRunStatus.NOT_STARTED)
    result = _tick(sensor, env)
    assert isinstance(result, dg.SkipReason) and queued.run_id in result.skip_message
    env.instance.delete_run(queued.run_id)
    result = _tick(sensor, env)
    assert len(result.run_requests) == 1


def test_schedule_requests_the_pending_range_as_one_run(env):
    schedule = env.defs.resolve_schedule_def(SYNC_SCHEDULE)
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    keys = env.all_keys()
    tick = datetime(2026, 11, 24, 10, 15, tzinfo=UTC)

    def evaluate():
        with dg.build_schedule_context(instance=env.instance, scheduled_execution_time=tick,
                                       resources=env.resources) as context:
            requests = schedule.evaluate_tick(context).run_requests
        assert len(requests) == 1
        return requests[0]

    before = evaluate()
    assert (before.tags[RANGE_START], before.tags[RANGE_END]) == (keys[0], keys[-1])  # nothing migrated yet
    assert before.run_key == "sync:2026-11-24T10:15Z" == evaluate().run_key
    assert _steps(env, before) == _synced_with_drift_checks(ENTITY_NAMES)

    assert env.migrate().success
    after = evaluate()
    newest = _rows(env.source_url, "SELECT max(updated_at) FROM public.patients")[0][0]
    assert keys[0] < after.tags[RANGE_START] <= max(newest.date().isoformat(), keys[0])
    assert after.tags[RANGE_END] == keys[-1]


def migration_job() -> dg.JobDefinition:
    """`migrate_all` as a run worker rebuilds it (module scope: the step processes import it)."""
    return build_definitions().resolve_job_def(MIGRATION_JOB)


@pytest.fixture
def step_forkserver():
    """This process's forkserver (multiprocessing keeps one per process), stopped afterwards: it holds this
    test's environment, whose databases are dropped."""
    server = multiprocessing.forkserver._forkserver  # the stdlib's singleton; its own tests stop it the same way
    assert server._forkserver_pid is None, "a forkserver is already running in this process"
    yield server
    server._stop()


@pytest.mark.skipif(sys.platform != "linux", reason="steps fork from a forkserver on Linux only")
def test_a_run_launched_like_the_daemon_forks_its_steps_and_migrates_everything(env, step_forkserver):
    """The multiprocess executor of runs launched by the daemon or the UI: steps forked from a forkserver that
    preloaded the code location (decision 0011), each in a process of its own, not the test's."""
    keys = env.all_keys()
    with dg.execute_job(dg.reconstructable(migration_job), instance=env.instance,
                        tags={RANGE_START: keys[0], RANGE_END: keys[-1]}) as result:
        assert result.success
        events = result.all_events
        succeeded = {e.step_key for e in events if e.is_step_success}
        workers = {e.pid for e in events if e.event_type_value == "STEP_WORKER_STARTED"}
        checked = [e.user_message for e in env.instance.all_logs(result.run_id) if CHECKED in e.user_message]
    assert step_forkserver._forkserver_pid is not None, "the steps were not forked from a forkserver"
    assert step_forkserver._preload_modules[-1] == STEP_PRELOAD
    assert {"offices", "doctors", "patients", "orders", "jaws", "system_messages"} <= succeeded
    assert len(succeeded) == 12  # six entities and their schema-drift checks
    assert len(workers) == 12 and os.getpid() not in workers
    assert len(checked) == 1  # the start-up checks, once for the run (run_start.py), not once per step
    for table in ("offices", "doctors", "patients", "orders", "jaws", "system_messages"):
        source = _rows(env.source_url, f"SELECT count(*) FROM public.{table}")[0][0]
        target = _rows(env.dest_url, f"SELECT count(*) FROM app.{table}")[0][0]
        assert 0 < target <= source, table


class _Hook(BaseHTTPRequestHandler):
    status = 200
    received: list = []

    def do_POST(self):
        type(self).received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _collide_two_orders(source_url) -> tuple[int, int]:
    ids = [r[0] for r in _rows(source_url, "SELECT id FROM public.orders ORDER BY id LIMIT 2")]
    _exec(source_url, "UPDATE public.orders SET order_no = 'zz-777' WHERE id = :a", a=ids[0])
    _exec(source_url, "UPDATE public.orders SET order_no = ' ZZ-777 ' WHERE id = :b", b=ids[1])
    return ids[0], ids[1]


def _evaluate_failure_sensor(env, result):
    sensor = env.defs.resolve_sensor_def(RUN_FAILURE_SENSOR)
    with dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR, dagster_event=result.get_run_failure_event(), dagster_instance=env.instance,
        dagster_run=result.dagster_run, resources=env.resources).for_run_failure() as context:
        sensor(context)


def _alerts(env, run_id):
    return _rows(env.dest_url, "SELECT entity, details FROM dbmig.audit_log"
                               " WHERE operation = 'run_failure_alert' AND run_id = :r ORDER BY id", r=run_id)


# (what the webhook does, HTTP status it answers or None for nobody listening)
WEBHOOK_CASES = [("accepts", 200), ("answers 500", 500), ("nobody listens", None)]


@pytest.mark.parametrize("label,status", WEBHOOK_CASES, ids=[c[0] for c in WEBHOOK_CASES])
def test_failure_sensor_records_an_integrity_alert_and_posts_it(env, webhook, monkeypatch, label, status):
    port = webhook.server_address[1] if status else 1
    _Hook.status = status or 200
    monkeypatch.setenv("DBMIG_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hooks/dbmig?token=s3cret")
    a, b = _collide_two_orders(env.source_url)
    result = env.migrate()
    assert not result.success

    _evaluate_failure_sensor(env, result)  # a failing webhook is logged, never raised
    _evaluate_failure_sensor(env, result)  # evaluated again: nothing recorded twice

    alerts = _alerts(env, result.run_id)
    assert [entity for entity, _ in alerts] == ["orders"]
    details = alerts[0][1]
    assert details["category"] == "integrity" and details["job"] == MIGRATION_JOB
    assert str(a) in details["message"] and str(b) in details["message"]
    if status:
        path, payload = _Hook.received[0]
        assert path == "/hooks/dbmig?token=s3cret" and len(_Hook.received) == 1  # not again on re-evaluation
        assert payload["event"] == "dbmig.run_failure" and payload["run_id"] == result.run_id
        assert payload["steps"] == [{"entity": "orders", "category": "integrity", "message": details["message"]}]
    else:
        assert _Hook.received == []


def test_failure_sensor_reports_an_unreachable_source_as_technical_without_the_password(env, monkeypatch):
    monkeypatch.setenv("DBMIG_SOURCE_URL", "postgresql://reader:TopSecret99@127.0.0.1:1/legacy")
    monkeypatch.setenv("DBMIG_CONNECT_RETRIES", "0")
    keys = env.all_keys()
    result = env.migrate(keys[-1:])
    assert not result.success
    monkeypatch.setenv("DBMIG_SOURCE_URL", env.source_url)  # the sensor itself only needs the destination
    _evaluate_failure_sensor(env, result)
    alerts = _alerts(env, result.run_id)
    assert alerts and {details["category"] for _, details in alerts} == {"technical"}
    assert "DBMIG_SOURCE_URL" in alerts[0][1]["message"]  # the cause, not Dagster's wrapper
    assert "TopSecret99" not in json.dumps([details for _, details in alerts])


def test_reconcile_all_repairs_the_other_entities_when_one_stops_on_a_collision(env):
    """MAPPING.md section 4: an integrity error stops the affected entity; the other entities go on."""
    assert env.migrate().success
    first = _rows(env.source_url, "SELECT id, order_no FROM public.orders ORDER BY id LIMIT 1")[0]
    # Only reconciliation finds these: an order inserted with an old timestamp whose number collides once
    # upper-cased, and a jaw and a system message (orders' successors in the run) changed without a bump.
    _exec(env.source_url, "INSERT INTO public.orders (created_at, updated_at, patient_id, order_no, status, price,"
                          " details) SELECT created_at, created_at, patient_id, lower(order_no), status, price, details"
                          " FROM public.orders WHERE id = :i", i=first[0])
    late = _rows(env.source_url, "SELECT max(id) FROM public.orders")[0][0]
    jaw = _rows(env.source_url, "SELECT min(id) FROM public.jaws")[0][0]
    message = _rows(env.source_url, "SELECT min(id) FROM public.system_messages")[0][0]
    _exec(env.source_url, "UPDATE public.jaws SET scan_url = 's3://silently/changed' WHERE id = :i", i=jaw)
    _exec(env.source_url, "UPDATE public.system_messages SET body = 'silently changed' WHERE id = :i", i=message)

    result = env.defs.resolve_job_def("reconcile_all").execute_in_process(instance=env.instance,
                                                                          raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert "orders" in description and f"{first[0]}, {late}" in description
    assert _rows(env.dest_url, "SELECT scan_url FROM app.jaws WHERE legacy_id = :i", i=jaw) == [
        ("s3://silently/changed",)]
    assert _rows(env.dest_url, "SELECT body FROM app.system_messages WHERE legacy_id = :i", i=message) == [
        ("silently changed",)]
    assert _rows(env.dest_url, "SELECT count(*) FROM app.orders WHERE legacy_id = :i", i=late) == [(0,)]
    assert _rows(env.dest_url, "SELECT legacy_id FROM dbmig.row_errors WHERE entity = 'orders'"
                               " AND category = 'integrity' AND resolved_at IS NULL ORDER BY 1") == [(first[0],), (late,)]
