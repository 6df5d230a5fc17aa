"""Reconciliation in Dagster: a schedulable asset that repairs, and per-entity checks.

Thin by design: the asset and checks call the engine and report. No SQL here.
(No `from __future__ import annotations`: Dagster reads the annotations.)
"""
from datetime import timedelta

import dagster as dg
from pydantic import Field

from dbmig_pipeline.assets import OPERATOR_TAG, RETRY_POLICY, SOURCE_POOL, SPECS_BY_NAME
from dbmig_pipeline.engine.errors import IntegrityHalt, is_technical
from dbmig_pipeline.engine.reconcile import DeleteGuardHalt, reconcile_entity
from dbmig_pipeline.engine.reports import baseline_report, integrity_report
from dbmig_pipeline.engine.sync import RunInfo
from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES
from dbmig_pipeline.entities.spec import EntitySpec
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.schema import prepare_destination

RECONCILE_GROUP = "reconciliation"
RECONCILE_ASSET = "reconciliation"
RECONCILE_JOB = "reconcile_all"


class ReconcileConfig(dg.Config):
    # Each field's description is what the launchpad shows the operator.
    entities: list[str] = Field(default=[], description=(
        "Entities to reconcile, e.g. [\"orders\"]; empty: all six, parents first."))
    force_deletes: bool = Field(default=False, description=(
        "Soft-delete past the delete guard (DBMIG_DELETE_GUARD_PERCENT / _MIN_ROWS). Only once you have checked "
        "that the rows are really gone from the source, not a truncated or wrongly configured source."))


@dg.asset(
    name=RECONCILE_ASSET,
    group_name=RECONCILE_GROUP,
    deps=[dg.AssetKey(name) for name in ENTITY_NAMES],
    retry_policy=RETRY_POLICY,
    pool=SOURCE_POOL,
    kinds={"postgres"},
    description="Compares every source row's content hash with the ledger, range by range, and re-syncs "
    "exactly what differs: updates without a timestamp bump, NULL timestamps, late rows, deletes.",
)
def reconciliation(context: dg.AssetExecutionContext, config: ReconcileConfig, source_db: SourceDatabase,
                   dest_db: DestinationDatabase) -> dg.MaterializeResult:
    unknown = [e for e in config.entities if e not in ENTITY_NAMES]
    if unknown:
        raise dg.Failure(f"unknown entity {unknown[0]!r}; choose from {', '.join(ENTITY_NAMES)}", allow_retries=False)
    settings = dest_db.settings
    prepare_destination(dest_db.engine)
    run = RunInfo(run_id=context.run.run_id, operator=context.run.tags.get(OPERATOR_TAG, "dagster"),
                  batch_size=settings.batch_size, lookback=timedelta(seconds=settings.lookback_s),
                  batch_retries=settings.batch_retries,
                  mask_key=settings.mask_key if settings.mask_pii else None)  # repairs are masked like runs
    metadata: dict = {}
    halted: list[str] = []
    for spec in ENTITIES:
        if config.entities and spec.name not in config.entities:
            continue
        try:
            result = reconcile_entity(source_db.engine, dest_db.engine, spec, SPECS_BY_NAME, run,
                                      guard_share=settings.delete_guard_share,
                                      guard_min_rows=settings.delete_guard_min_rows, force_deletes=config.force_deletes)
        except (DeleteGuardHalt, IntegrityHalt) as exc:  # this entity stops; the others go on (MAPPING.md §4)
            context.log.error(str(exc))
            halted.append(str(exc))
            continue
        except Exception as exc:
            if is_technical(exc):
                raise
            raise dg.Failure(description=f"{spec.name}: {type(exc).__name__}: {exc}", allow_retries=False) from exc
        summary = result.summary()
        context.log.info(f"{spec.name}: {summary}")
        metadata[spec.name] = dg.MetadataValue.json(summary)
    if halted:
        raise dg.Failure(description="\n".join(halted), allow_retries=False)
    return dg.MaterializeResult(metadata=metadata)


def _baseline_metadata(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if isinstance(value, int) and key != "entity"}


def build_reconciliation_checks(spec: EntitySpec) -> list[dg.AssetChecksDefinition]:
    # additional_deps: in reconcile_all the checks look at the target after the repair, not before
    @dg.asset_check(asset=spec.name, name="reconciliation", pool=SOURCE_POOL,
                    additional_deps=[dg.AssetKey(RECONCILE_ASSET)],
                    description="Every source row's content hash equals the one recorded at migration "
                    "(parked and quarantined rows are explained and counted).")
    def _reconciliation(source_db: SourceDatabase, dest_db: DestinationDatabase) -> dg.AssetCheckResult:
        report = baseline_report(source_db.engine, dest_db.engine, spec)
        return dg.AssetCheckResult(
            passed=report.differences == 0,
            severity=dg.AssetCheckSeverity.WARN,
            description=None if report.differences == 0 else
            f"{report.new} new, {report.changed} changed, {report.deleted} deleted in the source: "
            "a differential sync or `dbmig reconcile` will bring them",
            metadata=_baseline_metadata(report.summary()),
        )

    checks = [_reconciliation]
    if spec.parents:
        @dg.asset_check(asset=spec.name, name="referential_integrity", pool=SOURCE_POOL,
                        additional_deps=[dg.AssetKey(RECONCILE_ASSET)],
                        description="No live row points at a parent marked deleted that still exists in the source.")
        def _referential(source_db: SourceDatabase, dest_db: DestinationDatabase) -> dg.AssetCheckResult:
            report = integrity_report(source_db.engine, dest_db.engine, spec, SPECS_BY_NAME)
            return dg.AssetCheckResult(passed=report.passed, severity=dg.AssetCheckSeverity.ERROR,
                                       metadata=_baseline_metadata(report.summary()))

        checks.append(_referential)
    return checks


def build_all_reconciliation_checks() -> list[dg.AssetChecksDefinition]:
    return [check for spec in ENTITIES for check in build_reconciliation_checks(spec)]
