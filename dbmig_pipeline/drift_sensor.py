"""The schema-drift sensor: notices drift between syncs, without launching runs.

Every evaluation compares all entities with their accepted snapshots and
writes one `drift_detected` row to `dbmig.audit_log` per newly seen drift.
Invariant: the same drift is recorded once; the sensor's JSON cursor holds
the digests already recorded per entity, and an entity back to its accepted
schema is dropped from it, so a later drift is recorded again. It never
requests a run: halting is the pre-flight's job, fixing is a person's.
"""
import json

import dagster as dg

from dbmig_pipeline.db import DatabaseUnavailable, open_databases
from dbmig_pipeline.engine.drift_api import inspect_entities, record_detected
from dbmig_pipeline.entities.spec import EntitySpec
from dbmig_pipeline.schema import apply_control_schema
from dbmig_pipeline.settings import ConfigError, Settings

DRIFT_SENSOR = "schema_drift_sensor"
SENSOR_OPERATOR = "sensor:" + DRIFT_SENSOR


def build_drift_sensor(specs: list[EntitySpec] | tuple[EntitySpec, ...], *, automation: bool = False,
                       minimum_interval_seconds: int = 300) -> dg.SensorDefinition:
    """Stopped unless DBMIG_AUTOMATION=on, like the other schedules and sensors."""
    @dg.sensor(
        name=DRIFT_SENSOR,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if automation else dg.DefaultSensorStatus.STOPPED,
        description="Compares every entity's source and target tables with the accepted schema and records "
        "new drift in dbmig.audit_log (drift_detected). Launches no runs.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        try:
            settings = Settings.from_env()
            databases = open_databases(settings)
        except (ConfigError, DatabaseUnavailable) as exc:  # messages carry masked URLs only
            return dg.SkipReason(f"cannot check for drift: {exc}")
        try:
            apply_control_schema(databases.dest)
            reports = inspect_entities(databases.source, databases.dest, specs, settings.drift_strictness,
                                       operator=SENSOR_OPERATOR)
            seen = json.loads(context.cursor) if context.cursor else {}
            drifted = {r.entity: r for r in reports if r.differences}
            new = [r for r in drifted.values() if seen.get(r.entity) != r.key]
            for report in new:
                record_detected(databases.dest, report, operator=SENSOR_OPERATOR)
                context.log.warning(report.message())
        finally:
            databases.dispose()
        context.update_cursor(json.dumps({e: r.key for e, r in sorted(drifted.items())}))
        if not drifted:
            return dg.SkipReason("no schema drift")
        states = ", ".join(f"{r.entity}: {r.state}" for r in drifted.values())
        return dg.SkipReason(f"schema drift ({states}); {len(new)} newly recorded in dbmig.audit_log")

    return _sensor
