"""The six migration assets, generated from the entity specs.

Thin by design: each asset resolves its partition range, calls the engine
and reports what happened. No SQL here. (No `from __future__ import annotations`: Dagster reads the
config and resource annotations of the asset functions at definition time.)
"""
import sys
import time
import warnings
from datetime import timedelta

import dagster as dg
from pydantic import Field

from dbmig_pipeline.engine.errors import error_category, is_technical
from dbmig_pipeline.engine.partitions import partitions_for
from dbmig_pipeline.engine.progress import ProgressEvent
from dbmig_pipeline.engine.sync import DIFFERENTIAL, FULL, RunInfo, SyncStats, sync_entity
from dbmig_pipeline.entities import ENTITIES
from dbmig_pipeline.entities.spec import EntitySpec
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.schema import prepare_destination
from dbmig_pipeline.settings import Settings

# BackfillPolicy is marked beta; single-run backfills are what this design relies on.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

GROUP = "migration"
SOURCE_POOL = "dbmig_source"
#: Run tags the CLI and sensors set.
FULL_TAG = "dbmig/full"
OPERATOR_TAG = "dbmig/operator"
PROGRESS_TAG = "dbmig/progress"
#: dg.Failure metadata key: the error category the run-failure sensor reports.
ERROR_CATEGORY = "error_category"

SPECS_BY_NAME = {spec.name: spec for spec in ENTITIES}

#: Technical failures (connections, timeouts) are retried with backoff and jitter;
#: data errors raise dg.Failure(allow_retries=False) and are not.
RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """Daily partitions on the cursor column; the newest is today's (UTC)."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.partition_start.isoformat(), end_offset=1, timezone="UTC", fmt="%Y-%m-%d"
    )


class SyncConfig(dg.Config):
    # Each field's description is what the launchpad shows the operator.
    full: bool = Field(default=False, description=(
        "Re-read the whole partition window instead of starting at the saved cursor (a backfill after a "
        "schema-drift fix); rows whose content hash did not change are skipped. Same as the tag dbmig/full=true."))


def _run_mode(context: dg.AssetExecutionContext, config: SyncConfig) -> str:
    return FULL if config.full or context.run.tags.get(FULL_TAG) == "true" else DIFFERENTIAL


def _terminal():
    """The controlling terminal, or None: Dagster captures the step's stdout and stderr."""
    try:
        return open("/dev/tty", "w")  # noqa: SIM115 (closed with the bar)
    except OSError:
        return None


#: Seconds between two progress lines of an entity on a stderr that is not a terminal (a cron log, CI).
PROGRESS_LINE_EVERY_S = 30.0


def _progress_reporter(context: dg.AssetExecutionContext, spec: EntitySpec):
    """Progress lines in the run log; with the CLI's tag, also a bar with ETA on the terminal, or (stderr
    not a terminal) a timestamped line every PROGRESS_LINE_EVERY_S on stderr, which the CLI's run mirrors."""
    bar = None
    mode = context.run.tags.get(PROGRESS_TAG)
    terminal = _terminal() if mode == "bar" else None
    if terminal is not None:
        from tqdm import tqdm

        bar = tqdm(desc=spec.name, unit="rows", leave=True, dynamic_ncols=True, file=terminal)
    last_line = [time.monotonic()]

    def report(event: ProgressEvent) -> None:
        context.log.info(event.describe())
        if bar is not None:
            bar.total = event.total or None
            bar.n = event.done
            bar.refresh()
        elif mode == "lines" and time.monotonic() - last_line[0] >= PROGRESS_LINE_EVERY_S:
            last_line[0] = time.monotonic()
            print(f"[{time.strftime('%H:%M:%S')}] {event.describe()}", file=sys.stderr, flush=True)

    return report, bar


def _metadata(stats: SyncStats, mode: str) -> dict:
    return {
        "mode": mode,
        "partitions": f"{stats.partitions[0]} … {stats.partitions[-1]}" if stats.partitions else "",
        "rows_read": dg.MetadataValue.int(stats.read),
        "rows_written": dg.MetadataValue.int(stats.written),
        "rows_unchanged": dg.MetadataValue.int(stats.unchanged),
        "rows_parked": dg.MetadataValue.int(stats.parked),
        "rows_quarantined": dg.MetadataValue.int(stats.quarantined),
        "rows_unparked": dg.MetadataValue.int(stats.unparked),
        "rows_stale_skipped": dg.MetadataValue.int(stats.stale),
        "batches": dg.MetadataValue.int(stats.batches),
        "rows_per_second": dg.MetadataValue.float(round(stats.rows_per_s, 1)),
        "duration_seconds": dg.MetadataValue.float(round(stats.seconds, 3)),
        "watermark": stats.watermark.isoformat() if stats.watermark else "none",
    }


def build_entity_asset(*, spec: EntitySpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        group_name=GROUP,
        deps=[dg.AssetKey(p) for p in spec.parent_entities],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=RETRY_POLICY,
        pool=SOURCE_POOL,
        kinds={"postgres"},
        description=f"{spec.source_schema}.{spec.source_table} → {spec.target_schema}.{spec.target_table}"
        + (f"; parents: {', '.join(spec.parent_entities)}" if spec.parents else ""),
        metadata={"source_table": f"{spec.source_schema}.{spec.source_table}",
                  "target_table": f"{spec.target_schema}.{spec.target_table}"},
    )
    def _asset(context: dg.AssetExecutionContext, config: SyncConfig, source_db: SourceDatabase,
               dest_db: DestinationDatabase) -> dg.MaterializeResult:
        settings = dest_db.settings
        all_keys = partitions_def.get_partition_keys()
        partitions = partitions_for(list(context.partition_keys), all_keys)
        mode = _run_mode(context, config)
        prepare_destination(dest_db.engine)
        report, bar = _progress_reporter(context, spec)
        run = RunInfo(
            run_id=context.run.run_id,
            operator=context.run.tags.get(OPERATOR_TAG, "dagster"),
            mode=mode,
            batch_size=settings.batch_size,
            checkpoint_every=settings.checkpoint_every,
            writers=settings.writers,
            batch_retries=settings.batch_retries,
            lookback=timedelta(seconds=settings.lookback_s),
            mask_key=settings.mask_key if settings.mask_pii else None,
        )
        context.log.info(f"{spec.name}: {mode} sync of {partitions[0].key} … {partitions[-1].key}")
        try:
            stats = sync_entity(source_db.engine, dest_db.engine, spec, SPECS_BY_NAME, partitions, all_keys, run,
                                on_progress=report)
        except Exception as exc:
            if is_technical(exc):
                raise  # the RetryPolicy retries it; the retry resumes from the checkpoint
            raise dg.Failure(description=f"{type(exc).__name__}: {exc}" if not str(exc).startswith(spec.name)
                             else str(exc), allow_retries=False,
                             metadata={ERROR_CATEGORY: error_category(exc)}) from exc
        finally:
            if bar is not None:
                bar.close()
                bar.fp.close()
        context.log.info(f"{spec.name}: done: {stats.as_dict()}")
        return dg.MaterializeResult(metadata=_metadata(stats, mode))

    return _asset


def build_migration_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    partitions_def = daily_partitions(settings)
    return [build_entity_asset(spec=spec, partitions_def=partitions_def) for spec in ENTITIES]
