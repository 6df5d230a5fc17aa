"""The periodic differential sync: every DBMIG_SYNC_INTERVAL_MINUTES, one run over what is pending.

Shipped stopped (DBMIG_AUTOMATION=on, or the UI, starts it). Each tick asks
the control schema which partitions are pending for any entity and requests
them as ONE run; its run key is the tick time, so a tick evaluated twice
never launches twice.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from dbmig_pipeline.assets import daily_partitions
from dbmig_pipeline.engine.plan import union_pending_keys
from dbmig_pipeline.entities import ENTITY_NAMES
from dbmig_pipeline.resources import DestinationDatabase
from dbmig_pipeline.run_requests import range_request, waiting_run
from dbmig_pipeline.settings import Settings

SYNC_SCHEDULE = "differential_sync"


def interval_cron(minutes: int) -> str:
    """A cron expression for an interval that divides an hour or (in whole hours) a day; settings validate it."""
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    return "0 0 * * *" if hours >= 24 else f"0 */{hours} * * *"


def build_sync_schedule(settings: Settings, job) -> dg.ScheduleDefinition:
    partitions_def = daily_partitions(settings)

    @dg.schedule(
        name=SYNC_SCHEDULE,
        cron_schedule=interval_cron(settings.sync_interval_minutes),
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.automation else dg.DefaultScheduleStatus.STOPPED,
        description=f"Differential sync of every entity every {settings.sync_interval_minutes} min "
                    "(DBMIG_SYNC_INTERVAL_MINUTES), pending partitions as one run.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, dest_db: DestinationDatabase):
        waiting = waiting_run(context.instance, job.name)
        if waiting:
            return dg.SkipReason(f"run {waiting} is still queued; it will pick up every change")
        keys = union_pending_keys(dest_db.engine, list(ENTITY_NAMES), partitions_def.get_partition_keys(),
                                  timedelta(seconds=dest_db.settings.lookback_s))
        tick = context.scheduled_execution_time or datetime.now(UTC)
        return range_request(run_key=f"sync:{tick.astimezone(UTC):%Y-%m-%dT%H:%M}Z", keys=keys,
                             entities=ENTITY_NAMES, launched_by="schedule")

    return _schedule
