"""The start-up check of DAGSTER_PG_URL knows every table dagster-postgres keeps."""
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.runs.schema import RunStorageSqlMetadata
from dagster._core.storage.schedules.schema import ScheduleStorageSqlMetadata

from dbmig_pipeline.access import DAGSTER_TABLES


def test_the_listed_tables_are_dagsters_own():
    dagster = {"alembic_version"}
    for metadata in (RunStorageSqlMetadata, SqlEventLogStorageMetadata, ScheduleStorageSqlMetadata):
        dagster |= set(metadata.tables)
    assert set(DAGSTER_TABLES) == dagster
