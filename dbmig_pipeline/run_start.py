"""The start-up checks of runs launched by the daemon or the UI: once per run, before its first step.

A `dbmig` command checks its configuration before it writes anything
(db.open_databases: both databases reached, the destination's server
version, what each role may do there, source and destination two databases).
A run launched by a schedule, a sensor, a backfill or the UI has no command
around it, and the resources of its steps only reach their own database. So
the executor of those runs does the command's checks first, in the run worker,
before it starts any step: a wrong configuration fails the run with the
command's message (the variable, the role, the privilege and the GRANT that
fixes it; passwords masked), and no step has written anything to the target.

Once per run, not in each step's resources: a `migrate_all` run has twelve
steps, each in a process of its own, and the checks are a few dozen catalog
queries. Nothing here reads run config or writes anywhere.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg

from dbmig_pipeline.db import open_databases
from dbmig_pipeline.settings import Settings

#: Set on a run whose start-up checks failed: the failure sensor then writes nothing to the destination,
#: which may be the very database that is wrong (the legacy one, say).
CHECKS_FAILED_TAG = "dbmig/startup_checks"
#: The run's log line when every check passed (tests look for it).
CHECKED = "start-up checks: source and destination reached, two databases, each role may do what dbmig needs: ok"


def check_configuration() -> None:
    """The checks of a `dbmig` command, for a run: ConfigError or DatabaseUnavailable (AccessRefused), each
    naming the variable at fault, unless the settings are valid and both databases usable as configured.
    Dagster's own storage needs no check here: the run is already recording its events there."""
    open_databases(Settings.from_env()).dispose()


class _CheckedFirst(dg.Executor):
    """`inner`, once the configuration is checked."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        started = time.monotonic()
        try:
            check_configuration()
        except Exception as exc:
            plan_context.log.error(f"start-up checks failed, no step started: {exc}")
            plan_context.instance.add_run_tags(plan_context.run_id, {CHECKS_FAILED_TAG: "failed"})
            raise
        plan_context.log.info(f"{CHECKED} ({time.monotonic() - started:.2f} s)")
        yield from self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config


def checked_first(executor_def: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """`executor_def` (same name, configuration and requirements) whose runs check the configuration first."""
    create = executor_def.executor_creation_fn
    if create is None:
        raise ValueError(f"executor {executor_def.name!r} has no creation function to wrap")
    return dg.ExecutorDefinition(
        name=executor_def.name,
        config_schema=executor_def.config_schema,
        requirements=executor_def.get_requirements,
        executor_creation_fn=lambda init_context: _CheckedFirst(create(init_context)),
        description=executor_def.description,
    )
