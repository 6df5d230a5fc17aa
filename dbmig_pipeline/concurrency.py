"""How runs share the machine and the source.

Three layers, each configuration rather than code: steps of one run go in
parallel (multiprocess executor, so jaws and system_messages run beside the
offices → orders chain; on Linux each step is forked from a server that
imported the code location once, DBMIG_STEP_START_METHOD, decision 0011);
every step that reads the source takes a slot of the `dbmig_source` pool
(limit in dagster.yaml); and queued runs carry one tag per entity they
migrate, limited to one run per tag in dagster.yaml, so two queued runs
never migrate the same entity at once (run_queue.py tags the runs that are
not `migrate_all`'s).
"""
from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from dbmig_pipeline.entities import ENTITIES
from dbmig_pipeline.run_start import checked_first
from dbmig_pipeline.settings import Settings

#: Three chains can run at once at most (offices → … → orders, jaws, system_messages).
MAX_PARALLEL_STEPS = 3

#: Imported once per run by the forkserver every step forks from (what a step needs, frozen for the collector).
STEP_PRELOAD = "dbmig_pipeline.step_preload"


def step_start_method(method: str) -> dict:
    """Dagster's `start_method` for Settings.step_start_method (DBMIG_STEP_START_METHOD)."""
    if method == "forkserver":
        return {"forkserver": {"preload_modules": [STEP_PRELOAD]}}
    return {"spawn": {}}


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The executor of runs launched by the daemon or the UI, which checks the configuration before it starts
    any step (run_start.py); the CLI's `execute_in_process` runs stay in one process (checked by the command)."""
    return checked_first(dg.multiprocess_executor).configured(
        {"max_concurrent": MAX_PARALLEL_STEPS, "start_method": step_start_method(settings.step_start_method)},
        name="dbmig_multiprocess")


def with_descendants(names: Iterable[str]) -> list[str]:
    """The entities and every entity below them, parents first: parked children load once their parent arrives."""
    chosen = set(names)
    for spec in ENTITIES:  # parents come first, so one pass closes the set
        if chosen.intersection(spec.parent_entities):
            chosen.add(spec.name)
    return [spec.name for spec in ENTITIES if spec.name in chosen]
