"""Sensors: a run when the source changed, an alert when a run failed.

Both ship stopped (DBMIG_AUTOMATION=on, or the UI, starts them). The
source-change sensor keeps the watermarks it saw in its JSON cursor and
derives its run keys from them, so the same change never launches twice;
the failure sensor writes one audit row per failed entity and may POST the
alert to DBMIG_ALERT_WEBHOOK_URL.
"""
from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg

from dbmig_pipeline.assets import ERROR_CATEGORY, daily_partitions
from dbmig_pipeline.concurrency import with_descendants
from dbmig_pipeline.engine.alerts import FailedStep, RunFailure, post_alert, record_failure
from dbmig_pipeline.engine.plan import union_pending_keys
from dbmig_pipeline.engine.watermarks import Watermark, moved, nulls_grew, source_watermarks
from dbmig_pipeline.entities import ENTITIES
from dbmig_pipeline.entities.spec import DATA_QUALITY, TECHNICAL
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.run_requests import digest, range_request, waiting_run
from dbmig_pipeline.run_start import CHECKS_FAILED_TAG
from dbmig_pipeline.schema import apply_control_schema
from dbmig_pipeline.settings import Settings

SOURCE_CHANGE_SENSOR = "source_changes"
RUN_FAILURE_SENSOR = "run_failure_alerts"


def _status(settings: Settings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.automation else dg.DefaultSensorStatus.STOPPED


def _load_cursor(cursor: str | None) -> dict[str, Watermark]:
    return {name: Watermark.from_json(mark) for name, mark in json.loads(cursor).items()} if cursor else {}


def build_source_change_sensor(settings: Settings, job) -> dg.SensorDefinition:
    partitions_def = daily_partitions(settings)

    @dg.sensor(
        name=SOURCE_CHANGE_SENSOR,
        job=job,
        minimum_interval_seconds=60,
        default_status=_status(settings),
        description="Polls the newest updated_at per source table, up to the source's clock and after it (two "
                    "index lookups), and requests a differential run of the entities that changed, and of their "
                    "children, over the pending range.",
    )
    def _sensor(context: dg.SensorEvaluationContext, source_db: SourceDatabase, dest_db: DestinationDatabase):
        seen = _load_cursor(context.cursor)
        now = source_watermarks(source_db.engine, ENTITIES)
        changed, grew = moved(seen, now), nulls_grew(seen, now)
        cursor = json.dumps({name: mark.to_json() for name, mark in now.items()}, sort_keys=True)
        if not changed and not grew:
            return dg.SensorResult(skip_reason=dg.SkipReason("no source change since the last look"), cursor=cursor)
        waiting = waiting_run(context.instance, job.name)
        if waiting:  # cursor kept: the changes are looked at again once that run has started
            return dg.SkipReason(f"run {waiting} is still queued; it will pick up these changes")
        all_keys = partitions_def.get_partition_keys()
        requests = []
        if changed:
            entities = with_descendants(changed)
            keys = union_pending_keys(dest_db.engine, entities, all_keys,
                                      timedelta(seconds=dest_db.settings.lookback_s))
            marks = {name: now[name].to_json() for name in changed}
            requests.append(range_request(run_key=f"changes:{digest(marks)}", keys=keys, entities=entities,
                                          launched_by="sensor"))
        for name in grew:
            # NULL-cursor rows carry no timestamp: only a full read of the first partition sees them.
            requests.append(range_request(run_key=f"nulls:{name}:{digest(now[name].to_json())}", keys=all_keys[:1],
                                          entities=[name], launched_by="sensor", full=True))
        context.log.info(f"source changed: {', '.join(sorted({*changed, *grew}))}")
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


def _failed_steps(context: dg.RunFailureSensorContext) -> tuple[FailedStep, ...]:
    steps = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        error = data.error.message.strip() if data.error else "failed"
        if user is not None:  # dg.Failure: the assets raise it for data problems, never retried
            category = user.metadata.get(ERROR_CATEGORY)
            steps.append(FailedStep(event.step_key, str(category.value) if category else DATA_QUALITY,
                                    user.description or error))
        else:  # an exception left after the RetryPolicy gave up: connections, timeouts
            steps.append(FailedStep(event.step_key, TECHNICAL, error))
    if not steps:  # e.g. a database unreachable when the run's resources started
        steps.append(FailedStep(None, TECHNICAL, _run_error(context.failure_event)))
    return tuple(steps)


def _run_error(event: dg.DagsterEvent) -> str:
    """The innermost cause of a run-level failure: Dagster's own wrapper says little."""
    error = event.job_failure_data.error
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error else (event.message or "the run failed outside any step")


def _failed_its_checks(context: dg.RunFailureSensorContext) -> bool:
    """The run stopped at its start-up checks (run_start.py): its configuration, perhaps the destination
    itself, is what is wrong."""
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
    return run.tags.get(CHECKS_FAILED_TAG) == "failed"


def describe_failure(context: dg.RunFailureSensorContext) -> RunFailure:
    run = context.dagster_run
    start, end = run.tags.get("dagster/asset_partition_range_start"), run.tags.get("dagster/asset_partition_range_end")
    partitions = f"{start}…{end}" if start else run.tags.get("dagster/partition")
    return RunFailure(run.run_id, run.job_name, partitions, _failed_steps(context))


def build_run_failure_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=_status(settings),
        description="Every failed run of this code location: one dbmig.audit_log row per failed entity "
                    "(operation run_failure_alert, category), and a JSON POST to DBMIG_ALERT_WEBHOOK_URL if set.",
    )
    def _sensor(context: dg.RunFailureSensorContext, dest_db: DestinationDatabase):
        failure = describe_failure(context)
        written = None
        try:
            if _failed_its_checks(context):
                context.log.warning(f"run {failure.run_id} failed its start-up checks (see the run): nothing is "
                                    "recorded in the destination, which may be the database that is wrong")
                return
            apply_control_schema(dest_db.engine)
            written = record_failure(dest_db.engine, failure)
            context.log.info(f"run {failure.run_id} failed: {written} alert(s) recorded in dbmig.audit_log")
        finally:
            # Posted once per newly recorded failure, and also when the audit write itself
            # failed: an unreachable destination may be the very failure to report.
            url = dest_db.settings.alert_webhook_url
            problem = post_alert(url, failure.payload()) if url and written != 0 else None
            if problem:
                context.log.warning(problem)

    return _sensor
