"""Launch migration runs from the terminal into the shared Dagster instance.

The CLI never migrates behind Dagster's back: every `dbmig migrate` is a
Dagster run of the `migrate_all` job (recorded in the instance, visible in
the UI), executed in this process so that progress shows in the terminal.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

from dbmig_pipeline import run_reaper, startup
from dbmig_pipeline.assets import FULL_TAG, OPERATOR_TAG, PROGRESS_TAG, SOURCE_POOL, daily_partitions
from dbmig_pipeline.db import Databases
from dbmig_pipeline.definitions import MIGRATION_JOB, build_definitions
from dbmig_pipeline.engine.partitions import key_range
from dbmig_pipeline.engine.plan import union_pending_keys
from dbmig_pipeline.entities import ENTITY_NAMES, get_entity
from dbmig_pipeline.instance import prepare_dagster_home
from dbmig_pipeline.settings import ConfigError
from dbmig_pipeline.identity import current_operator

#: The terminal shows dbmig's own summary; Dagster's full log is in the instance (and the UI).
_QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class EntityOutcome:
    entity: str
    ok: bool
    metadata: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class MigrationOutcome:
    run_id: str
    keys: list[str]
    entities: list[EntityOutcome]

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entities)


def resolve_keys(databases: Databases, entities: list[str], *, partition: str | None,
                 date_from: date | None, date_to: date | None, full: bool = False) -> list[str]:
    """The partitions a command's run covers: the one or the range asked for; else, for a full pass, all of
    them (a full re-read of only the pending ones would skip every older row); else the pending ones."""
    all_keys = daily_partitions(databases.settings).get_partition_keys()
    if partition:
        if partition not in all_keys:
            raise ConfigError(f"--partition {partition} is not a partition ({all_keys[0]} … {all_keys[-1]}; "
                              "DBMIG_PARTITION_START sets the first)")
        return [partition]
    if date_from or date_to:
        first = (date_from or date.fromisoformat(all_keys[0])).isoformat()
        last = (date_to or date.fromisoformat(all_keys[-1])).isoformat()
        try:
            return key_range(all_keys, first, last)
        except ValueError as exc:
            raise ConfigError(f"--from/--to: {exc}") from None
    if full:
        return all_keys
    lookback = timedelta(seconds=databases.settings.lookback_s)
    return union_pending_keys(databases.dest, entities, all_keys, lookback)


@contextmanager
def _cli_instance() -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of a run launched from the command line, holding its storage connections.

    dagster-postgres opens a new connection for every event it stores
    (~490 per `dbmig migrate`, ~0.6 s); the webserver's optimisation keeps a
    small pool instead, which suits one short-lived process as well.
    """
    with startup.building():  # imports dagster-postgres and its migrations' packages
        instance = dg.DagsterInstance.get()
    with instance:
        instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=10)
        yield instance


def _cli_tags() -> dict[str, str]:
    """The tags of every run this process executes: who launched it, and the process the reaper asks after."""
    return {OPERATOR_TAG: current_operator(), **run_reaper.LAUNCHED_BY_CLI,
            run_reaper.PROCESS_TAG: run_reaper.this_process()}


def _reap(instance: dg.DagsterInstance) -> None:
    """Runs of killed `dbmig` processes failed, their source slots freed (dbmig_pipeline/run_reaper.py)."""
    for run_id in run_reaper.reap(instance, [SOURCE_POOL]):
        print(f"dbmig: run {run_id} was left unfinished by a dbmig process that is gone (killed?): marked failed, "
              "its slots of the source pool freed", file=sys.stderr)


def run_migration(databases: Databases, *, entities: list[str] | None = None, partition: str | None = None,
                  date_from: date | None = None, date_to: date | None = None, full: bool = False,
                  progress: bool = True) -> MigrationOutcome:
    entities = list(entities or ENTITY_NAMES)
    unknown = [e for e in entities if e not in ENTITY_NAMES]
    if unknown:
        raise ConfigError(f"unknown entity {unknown[0]!r}; choose from {', '.join(ENTITY_NAMES)}")
    databases.check_dagster_storage()  # before Dagster opens it: dagster-postgres retries for long, then tracebacks
    prepare_dagster_home(databases.settings, databases.endpoints)
    keys = resolve_keys(databases, entities, partition=partition, date_from=date_from, date_to=date_to, full=full)
    tags = {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
        **_cli_tags(),
    }
    if full:
        tags[FULL_TAG] = "true"
    if progress:  # a bar on a terminal; timestamped lines in a log (cron, CI)
        tags[PROGRESS_TAG] = "bar" if sys.stderr.isatty() else "lines"
    subset = None if set(entities) == set(ENTITY_NAMES) else entities
    job = build_definitions(databases.settings, entities=subset).resolve_job_def(MIGRATION_JOB)
    with _cli_instance() as instance:
        _reap(instance)
        result = job.execute_in_process(
            instance=instance,
            tags=tags,
            run_config=_QUIET_LOGS,
            raise_on_error=False,
        )
    return MigrationOutcome(result.run_id, keys, _outcomes(result, entities))



def _outcomes(result: dg.ExecuteInProcessResult, entities: list[str]) -> list[EntityOutcome]:
    failures: dict[str, str] = {}
    skipped: set[str] = set()
    for event in result.all_events:
        if event.is_step_failure and event.step_key:
            error = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            failures[event.step_key] = (user.description if user and user.description else None) or (
                error.message.strip() if error else "failed")
        elif event.is_step_skipped and event.step_key:
            skipped.add(event.step_key)
    outcomes = []
    for entity in entities:
        if entity in failures:
            outcomes.append(EntityOutcome(entity, False, error=failures[entity]))
        elif entity in skipped:
            outcomes.append(EntityOutcome(entity, False, error="skipped: a parent entity failed in this run"))
        else:
            materializations = result.asset_materializations_for_node(entity)
            metadata = {k: v.value for k, v in materializations[-1].metadata.items()} if materializations else {}
            outcomes.append(EntityOutcome(entity, bool(materializations), metadata,
                                          None if materializations else _why_not_run(entity, outcomes)))
    return outcomes


def _why_not_run(entity: str, earlier: list[EntityOutcome]) -> str:
    """In-process runs do not report the steps they skip; a parent that did not finish is the reason."""
    stopped = {o.entity for o in earlier if not o.ok}
    parents = [p for p in get_entity(entity).parent_entities if p in stopped]
    return f"skipped: its parent {parents[0]} did not finish in this run" if parents else "did not run"


def run_reconciliation(databases: Databases, *, entities: list[str] | None = None,
                       force_deletes: bool = False) -> tuple[str, bool, dict, list[str]]:
    """Run `reconcile_all` (repair, then every entity's checks) in this process.

    Returns (run id, ok, per-entity summary, errors and failed checks).
    """
    from dbmig_pipeline.reconciliation import RECONCILE_ASSET, RECONCILE_JOB

    entities = list(entities or ENTITY_NAMES)
    unknown = [e for e in entities if e not in ENTITY_NAMES]
    if unknown:
        raise ConfigError(f"unknown entity {unknown[0]!r}; choose from {', '.join(ENTITY_NAMES)}")
    databases.check_dagster_storage()  # before Dagster opens it: dagster-postgres retries for long, then tracebacks
    prepare_dagster_home(databases.settings, databases.endpoints)
    run_config = {
        **_QUIET_LOGS,
        "ops": {RECONCILE_ASSET: {"config": {"entities": entities, "force_deletes": force_deletes}}},
    }
    job = build_definitions(databases.settings).resolve_job_def(RECONCILE_JOB)
    with _cli_instance() as instance:
        _reap(instance)
        result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False,
                                        tags=_cli_tags())
    summaries: dict = {}
    for event in result.asset_materializations_for_node(RECONCILE_ASSET):
        summaries.update({k: v.value for k, v in event.metadata.items()})
    errors = []
    for event in result.all_events:
        if event.is_step_failure:
            user = event.step_failure_data.user_failure_data
            error = event.step_failure_data.error
            errors.append((user.description if user and user.description else None)
                          or (error.message.strip() if error else "failed"))
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            key = evaluation.asset_check_key
            errors.append(f"check {key.name} of {key.asset_key.to_user_string()} failed: "
                          f"{evaluation.description or dict((k, v.value) for k, v in evaluation.metadata.items())}")
    return result.run_id, result.success and not errors, summaries, errors
