"""Asset checks, one per entity, generated from the specs.

`schema_drift` is blocking: a breaking difference from the accepted schema
fails it with severity ERROR, so the entities downstream of it do not run on
top of it; additive drift fails it with severity WARN (shown, not blocking).
Thin by design: the comparison is the engine's (engine/drift_api.py), the
same one the run's pre-flight makes.
"""
import dagster as dg

from dbmig_pipeline.assets import OPERATOR_TAG
from dbmig_pipeline.engine.drift_api import DriftReport, inspect_entities
from dbmig_pipeline.entities.spec import EntitySpec
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.schema import prepare_destination

DRIFT_CHECK = "schema_drift"


def drift_check_result(report: DriftReport) -> dg.AssetCheckResult:
    """What the UI shows: pass/fail, severity, and every difference as metadata."""
    return dg.AssetCheckResult(
        passed=report.state == "ok",
        severity=dg.AssetCheckSeverity.WARN if report.state == "additive" else dg.AssetCheckSeverity.ERROR,
        description=report.message() if report.differences else "the schema is the accepted one",
        metadata={
            "state": report.state,
            "strictness": report.strictness,
            "differences": dg.MetadataValue.json([d.as_dict() for d in report.differences]),
            "summary": dg.MetadataValue.md("\n".join(f"- {d.describe()}" for d in report.differences) or "none"),
            "digests": report.key,
            "first_contact": ", ".join(report.first_contact) or "no",
        },
    )


def build_drift_check(*, spec: EntitySpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(spec.name),
        name=DRIFT_CHECK,
        blocking=True,
        description=f"{spec.source_schema}.{spec.source_table} and {spec.target_schema}.{spec.target_table} "
        "match the accepted schema snapshots (DBMIG_DRIFT_STRICTNESS decides what halts).",
    )
    def _check(context: dg.AssetCheckExecutionContext, source_db: SourceDatabase,
               dest_db: DestinationDatabase) -> dg.AssetCheckResult:
        prepare_destination(dest_db.engine)
        (report,) = inspect_entities(
            source_db.engine, dest_db.engine, [spec], dest_db.settings.drift_strictness,
            operator=context.run.tags.get(OPERATOR_TAG, "dagster"), run_id=context.run.run_id,
        )
        return drift_check_result(report)

    return _check


def build_drift_checks(specs) -> list[dg.AssetChecksDefinition]:
    return [build_drift_check(spec=spec) for spec in specs]
