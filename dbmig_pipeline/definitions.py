"""The Dagster code location: it only assembles what the other modules build."""
from __future__ import annotations

import dagster as dg

from dbmig_pipeline.assets import GROUP, build_migration_assets
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.settings import Settings

MIGRATION_JOB = "migrate_all"


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    migration_job = dg.define_asset_job(
        MIGRATION_JOB,
        selection=dg.AssetSelection.groups(GROUP),
        description="Every entity, parents first, for one partition or a range.",
    )
    assets: list = [*build_migration_assets(settings)]
    asset_checks: list = []
    jobs: list = [migration_job]
    schedules: list = []
    sensors: list = []
    return dg.Definitions(
        assets=assets,
        asset_checks=asset_checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"source_db": SourceDatabase(), "dest_db": DestinationDatabase()},
    )


defs = build_definitions()
