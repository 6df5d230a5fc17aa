"""The code location: six assets, their dependency edges, the job. A rename fails here."""
import dagster as dg

from dbmig_pipeline.definitions import MIGRATION_JOB, build_definitions
from dbmig_pipeline.entities import ENTITY_NAMES
from dbmig_pipeline.reconciliation import RECONCILE_JOB
from dbmig_pipeline.settings import Settings


def _defs(tmp_path):
    return build_definitions(Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": "2024-01-01"}))


def test_asset_keys_and_dependency_edges(tmp_path):
    graph = _defs(tmp_path).resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == ["doctors", "jaws", "offices", "orders", "patients", "reconciliation", "system_messages"]
    parents = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
               for k in graph.get_all_asset_keys()}
    assert parents == {"offices": [], "doctors": ["offices"], "patients": ["doctors"], "orders": ["patients"],
                       "jaws": [], "system_messages": [],
                       "reconciliation": ["doctors", "jaws", "offices", "orders", "patients", "system_messages"]}
    for key in graph.get_all_asset_keys():
        if key.to_user_string() == "reconciliation":
            assert graph.get(key).group_name == "reconciliation"
            continue
        node = graph.get(key)
        assert node.group_name == "migration"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()


def test_daily_partitions_start_where_configured_and_end_today(tmp_path):
    job = _defs(tmp_path).resolve_job_def(MIGRATION_JOB)
    keys = job.partitions_def.get_partition_keys()
    assert keys[0] == "2024-01-01"
    from datetime import UTC, datetime

    assert keys[-1] == datetime.now(UTC).date().isoformat()


def test_checks_jobs_schedules_and_sensors(tmp_path):
    defs = _defs(tmp_path)
    graph = defs.resolve_asset_graph()
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    entities = ["doctors", "jaws", "offices", "orders", "patients", "system_messages"]
    expected = sorted([f"{e}:reconciliation" for e in entities] + [f"{e}:schema_drift" for e in entities]
                      + [f"{e}:referential_integrity" for e in ("doctors", "orders", "patients")])
    assert checks == expected
    assert defs.resolve_job_def("reconcile_all") is not None
    migrate_checks = {k.name for k in defs.resolve_job_def(MIGRATION_JOB).asset_layer.asset_graph.asset_check_keys}
    assert "reconciliation" not in migrate_checks


def test_migrate_all_never_runs_the_full_table_reconciliation_checks(tmp_path):
    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": "2024-01-01"})
    for entities in (None, ["orders"], ["patients", "jaws"]):
        job = build_definitions(settings, entities=entities).resolve_job_def(MIGRATION_JOB)
        selected = job.asset_layer.asset_graph
        assets = sorted(k.to_user_string() for k in selected.executable_asset_keys)
        checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in selected.asset_check_keys)
        wanted = entities or ["doctors", "jaws", "offices", "orders", "patients", "system_messages"]
        assert assets == sorted(wanted)
        assert checks == sorted(f"{e}:schema_drift" for e in wanted)


def _config_fields(job: dg.JobDefinition) -> dict[str, dict[str, str | None]]:
    """Per op with run config, each field's description, as the launchpad receives them."""
    ops = job.run_config_schema.config_type.fields["ops"].config_type.fields
    configs = {name: op.config_type.fields["config"].config_type for name, op in ops.items()}
    return {name: {field: spec.description for field, spec in config.fields.items()}
            for name, config in configs.items() if hasattr(config, "fields")}  # the checks take any config


def test_every_run_config_field_an_operator_can_set_is_described(tmp_path):
    """The launchpad is where `full` and `force_deletes` are set: without a description it shows bare names."""
    defs = _defs(tmp_path)
    fields = {**_config_fields(defs.resolve_job_def(MIGRATION_JOB)),
              **_config_fields(defs.resolve_job_def(RECONCILE_JOB))}
    assert {name: sorted(described) for name, described in fields.items()} == {
        **{entity: ["full"] for entity in ENTITY_NAMES}, "reconciliation": ["entities", "force_deletes"]}
    assert all(description for described in fields.values() for description in described.values()), fields
