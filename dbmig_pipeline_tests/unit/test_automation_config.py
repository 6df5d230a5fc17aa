"""Automation without a database: cron intervals, switches, instance YAML, watermarks, alert masking."""
import multiprocessing
import os
import subprocess
import sys
from datetime import UTC, datetime

import psycopg2
import pytest
import yaml

from dbmig_pipeline.concurrency import MAX_PARALLEL_STEPS, STEP_PRELOAD, step_start_method, with_descendants
from dbmig_pipeline.definitions import build_definitions
from dbmig_pipeline.demo.run import CODE_LOCATION_MODULE
from dbmig_pipeline.engine.alerts import describe_url, redact
from dbmig_pipeline.engine.errors import IntegrityHalt, error_category
from dbmig_pipeline.engine.watermarks import Watermark, moved, nulls_grew
from dbmig_pipeline.entities import ENTITY_NAMES
from dbmig_pipeline.instance import _FALLBACK_INSTANCE_YAML, _PROJECT_INSTANCE_YAML
from dbmig_pipeline.run_queue import entity_tags
from dbmig_pipeline.schedules import interval_cron
from dbmig_pipeline.settings import ConfigError, Settings


def _settings(tmp_path, **env):
    return Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": "2024-01-01", **env})


@pytest.mark.parametrize("minutes,cron", [(1, "*/1 * * * *"), (15, "*/15 * * * *"), (60, "0 */1 * * *"),
                                          (120, "0 */2 * * *"), (1440, "0 0 * * *")])
def test_interval_becomes_cron(tmp_path, minutes, cron):
    settings = _settings(tmp_path, DBMIG_SYNC_INTERVAL_MINUTES=str(minutes))
    assert interval_cron(settings.sync_interval_minutes) == cron


@pytest.mark.parametrize("env,fragment", [
    ({"DBMIG_SYNC_INTERVAL_MINUTES": "45"}, "DBMIG_SYNC_INTERVAL_MINUTES"),
    ({"DBMIG_SYNC_INTERVAL_MINUTES": "0"}, "DBMIG_SYNC_INTERVAL_MINUTES"),
    ({"DBMIG_AUTOMATION": "maybe"}, "DBMIG_AUTOMATION"),
    ({"DBMIG_ALERT_WEBHOOK_URL": "ftp://hooks.example/x"}, "DBMIG_ALERT_WEBHOOK_URL"),
])
def test_bad_automation_settings_name_the_variable(tmp_path, env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        _settings(tmp_path, **env)


def test_webhook_url_never_shows_in_settings_repr(tmp_path):
    settings = _settings(tmp_path, DBMIG_ALERT_WEBHOOK_URL="https://hooks.example/T0/secret-token")
    assert settings.alert_webhook_url.endswith("secret-token")
    assert "secret-token" not in repr(settings)


@pytest.mark.parametrize("switch,expected", [(None, "STOPPED"), ("off", "STOPPED"), ("on", "RUNNING")])
def test_schedules_and_sensors_ship_stopped_unless_switched_on(tmp_path, switch, expected):
    env = {"DBMIG_AUTOMATION": switch} if switch else {}
    defs = build_definitions(_settings(tmp_path, **env))
    statuses = {s.name: s.default_status.value for s in [*defs.schedules, *defs.sensors]}
    ours = ("differential_sync", "source_changes", "run_failure_alerts", "schema_drift_sensor")
    assert [statuses[name] for name in ours] == [expected] * 4


def test_instance_yaml_and_its_fallback_agree_and_limit_every_entity():
    project = yaml.safe_load(_PROJECT_INSTANCE_YAML.read_text())
    assert project == yaml.safe_load(_FALLBACK_INSTANCE_YAML)
    limits = {item["key"]: item["limit"] for item in project["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert limits == {key: 1 for key in entity_tags(ENTITY_NAMES)}
    assert project["concurrency"]["pools"]["default_limit"] >= 1
    assert "config" not in project["run_coordinator"]  # `concurrency: runs:` replaces it (Dagster refuses both)


def test_the_workspace_file_names_the_code_location_as_dbmig_dev_does():
    """Dagster keeps schedule and sensor state per location name: under two names, automations switched on with
    `dbmig dev` showed stopped under `dagster dev -w workspace.yaml`, and those left running went unevaluated."""
    workspace = yaml.safe_load((_PROJECT_INSTANCE_YAML.parent / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    module = entry["python_module"]
    assert module["module_name"] == CODE_LOCATION_MODULE
    assert module.get("location_name", module["module_name"]) == CODE_LOCATION_MODULE  # Dagster's default name


def test_migration_job_runs_multiprocess_and_carries_the_entity_tags(tmp_path):
    job = build_definitions(_settings(tmp_path)).resolve_job_def("migrate_all")
    assert job.executor_def.name == "dbmig_multiprocess"
    assert entity_tags(ENTITY_NAMES).items() <= job.tags.items()


@pytest.mark.skipif(sys.platform != "linux", reason="steps fork from a forkserver on Linux only")
def test_steps_fork_from_a_server_that_preloaded_the_code_location(tmp_path):
    job = build_definitions(_settings(tmp_path)).resolve_job_def("migrate_all")
    config = job.executor_def.apply_config_mapping({}).value["config"]
    assert config["start_method"] == {"forkserver": {"preload_modules": [STEP_PRELOAD]}}
    assert config["max_concurrent"] == MAX_PARALLEL_STEPS


def test_an_operator_can_go_back_to_fresh_interpreters_per_step(tmp_path):
    settings = _settings(tmp_path, DBMIG_STEP_START_METHOD="spawn")
    job = build_definitions(settings).resolve_job_def("migrate_all")
    assert job.executor_def.apply_config_mapping({}).value["config"]["start_method"] == {"spawn": {}}


@pytest.mark.parametrize("platform,methods", [("win32", ["spawn"]), ("darwin", ["spawn", "fork", "forkserver"])])
def test_off_linux_steps_start_fresh_interpreters(tmp_path, monkeypatch, platform, methods):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: methods)
    assert _settings(tmp_path).step_start_method == "spawn"
    assert step_start_method("spawn") == {"spawn": {}}


def test_a_start_method_the_platform_lacks_or_a_typo_fails_naming_the_variable(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="DBMIG_STEP_START_METHOD must be one of forkserver, spawn"):
        _settings(tmp_path, DBMIG_STEP_START_METHOD="fork")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(ConfigError, match="DBMIG_STEP_START_METHOD=forkserver is not available on this platform"):
        _settings(tmp_path, DBMIG_STEP_START_METHOD="forkserver")


# Imports the preload module with databases that cannot be reached: it must connect to nothing.
_PRELOAD = """
import gc, sys
import dbmig_pipeline.step_preload
print(gc.isenabled(), gc.get_freeze_count() > 100_000, "dagster_postgres" in sys.modules,
      "dbmig_pipeline.definitions" in sys.modules)
"""


UNREACHABLE = "postgresql://migrator:TopSecret99@127.0.0.1:1/legacy"


@pytest.mark.parametrize("urls", [
    {"DBMIG_SOURCE_URL": UNREACHABLE, "DBMIG_DEST_URL": UNREACHABLE.replace("legacy", "target"),
     "DAGSTER_PG_URL": UNREACHABLE},
    {},  # the embedded default: importing must not start the embedded server either
], ids=["unreachable databases", "embedded default"])
def test_the_step_preload_imports_the_code_location_frozen_and_connects_to_nothing(tmp_path, urls):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))} | {
        "DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": "2024-01-01",
        "DBMIG_CONNECT_RETRIES": "1", "DBMIG_CONNECT_TIMEOUT": "1", **urls}
    result = subprocess.run([sys.executable, "-c", _PRELOAD], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "True"]
    assert not (tmp_path / "pgdata").exists()


T1, T2 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
T3, T4 = datetime(2099, 1, 1, tzinfo=UTC), datetime(2099, 1, 2, tzinfo=UTC)  # dated after the source's clock


@pytest.mark.parametrize("before,now,expect_moved,expect_grew", [
    ({}, {"a": Watermark(T1)}, ["a"], []),  # never seen: new
    ({"a": Watermark(T1)}, {"a": Watermark(T1)}, [], []),
    ({"a": Watermark(T1)}, {"a": Watermark(T2)}, ["a"], []),
    ({"a": Watermark(T2)}, {"a": Watermark(T1)}, [], []),  # newest row deleted: nothing new to move
    ({"a": Watermark(None)}, {"a": Watermark(None)}, [], []),  # empty table
    ({"m": Watermark(T1, 3)}, {"m": Watermark(T1, 4)}, [], ["m"]),
    ({"m": Watermark(T1, 4)}, {"m": Watermark(T1, 3)}, [], []),
    ({}, {"m": Watermark(T1, 4)}, ["m"], []),  # the first look loads NULL-cursor rows anyway
    ({"a": Watermark(T1, None, T3)}, {"a": Watermark(T2, None, T3)}, ["a"], []),  # an edit behind a future row
    ({"a": Watermark(T1, None, T3)}, {"a": Watermark(T1, None, T4)}, ["a"], []),  # a later future-dated row
    ({"a": Watermark(T1, None, T3)}, {"a": Watermark(T1, None, T3)}, [], []),
])
def test_watermark_comparison(before, now, expect_moved, expect_grew):
    assert moved(before, now) == expect_moved
    assert nulls_grew(before, now) == expect_grew
    assert {k: Watermark.from_json(v.to_json()) for k, v in now.items()} == now  # the cursor round-trips


def test_a_cursor_from_before_future_dated_rows_were_kept_apart_counts_as_unseen():
    """Its newest may be a future date that every edit stays behind: one run, rather than missed changes."""
    old = {"a": Watermark.from_json({"newest": T3.isoformat(), "nulls": None})}
    assert moved(old, {"a": Watermark(T2)}) == ["a"]


@pytest.mark.parametrize("changed,expected", [
    (["offices"], ["offices", "doctors", "patients", "orders"]),
    (["patients"], ["patients", "orders"]),
    (["jaws", "orders"], ["orders", "jaws"]),
    (["system_messages"], ["system_messages"]),
])
def test_children_follow_a_changed_parent(changed, expected):
    assert with_descendants(changed) == expected


@pytest.mark.parametrize("text,secret", [
    ("cannot connect to postgresql://reader:TopSecret99@db:5432/legacy", "TopSecret99"),
    ("dsn: host=db password=TopSecret99 dbname=x", "TopSecret99"),
    ("dsn: host=db password='Top Secret' dbname=x", "Top Secret"),
])
def test_alert_text_is_masked(text, secret):
    assert secret not in redact(text) and "***" in redact(text)


def test_webhook_url_is_described_without_its_path_or_token():
    assert describe_url("https://hooks.example:8443/services/T0/B0/secret?token=x") == "https://hooks.example:8443/…"


@pytest.mark.parametrize("exc,category", [
    (IntegrityHalt("orders: collision", [1, 2]), "integrity"),
    (psycopg2.OperationalError("server closed the connection"), "technical"),
    (ValueError("bad date"), "data_quality"),
])
def test_error_category(exc, category):
    assert error_category(exc) == category
