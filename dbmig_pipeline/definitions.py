"""The Dagster code location: it only assembles what the other modules build."""
from __future__ import annotations

import dagster as dg

from dbmig_pipeline.assets import GROUP, build_migration_assets
from dbmig_pipeline.reconciliation import RECONCILE_ASSET, RECONCILE_JOB, build_all_reconciliation_checks, reconciliation
from dbmig_pipeline.checks import build_drift_checks
from dbmig_pipeline.concurrency import build_executor
from dbmig_pipeline.drift_sensor import build_drift_sensor
from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.run_queue import entity_tags
from dbmig_pipeline.schedules import build_sync_schedule
from dbmig_pipeline.sensors import build_run_failure_sensor, build_source_change_sensor
from dbmig_pipeline.settings import Settings

MIGRATION_JOB = "migrate_all"


def build_definitions(settings: Settings | None = None, *, entities: list[str] | None = None) -> dg.Definitions:
    """The code location; `entities` narrows `migrate_all` (the CLI's --entity) and keeps its checks right."""
    settings = settings or Settings.from_env()
    reconciliation_checks = build_all_reconciliation_checks()
    migrated = dg.AssetSelection.assets(*entities) if entities else dg.AssetSelection.groups(GROUP)
    migration_job = dg.define_asset_job(
        MIGRATION_JOB,
        # the full-table reconciliation checks run with reconcile_all, not after every sync
        selection=migrated - dg.AssetSelection.checks(*reconciliation_checks),
        description="Every entity, parents first, for one partition or a range.",
        tags=entity_tags(ENTITY_NAMES),  # the queue runs one migrate_all at a time (dagster.yaml)
    )
    reconcile_job = dg.define_asset_job(
        RECONCILE_JOB,
        selection=dg.AssetSelection.assets(RECONCILE_ASSET) | dg.AssetSelection.checks(*reconciliation_checks),
        description="Find by content hash what no timestamp shows, repair it, and check every entity.",
    )
    assets: list = [*build_migration_assets(settings), reconciliation]
    asset_checks: list = [*build_drift_checks(ENTITIES), *reconciliation_checks]
    jobs: list = [migration_job, reconcile_job]
    schedules: list = [build_sync_schedule(settings, migration_job)]
    sensors: list = [build_source_change_sensor(settings, migration_job), build_run_failure_sensor(settings),
                     build_drift_sensor(ENTITIES, automation=settings.automation)]
    return dg.Definitions(
        assets=assets,
        asset_checks=asset_checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"source_db": SourceDatabase(), "dest_db": DestinationDatabase()},
        executor=build_executor(settings),
    )


defs = build_definitions()
