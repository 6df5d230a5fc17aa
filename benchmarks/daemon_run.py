"""One `migrate_all` run as the daemon's run worker executes it, for the harness.

    python -m benchmarks.daemon_run        (in the environment `dbmig env` prints)

The job's own executor (multiprocess: each step forked from the forkserver
that preloaded the code location, decision 0011), every partition, in the
shared Dagster instance: what a schedule, a sensor or the UI launches,
without the daemon's queue. Prints one JSON line: ok, steps that succeeded.
"""
from __future__ import annotations

import json
import sys

import dagster as dg

from dbmig_pipeline.definitions import MIGRATION_JOB, build_definitions

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def migration_job() -> dg.JobDefinition:
    """`migrate_all` as the run worker rebuilds it (module scope: the step processes import it)."""
    return build_definitions().resolve_job_def(MIGRATION_JOB)


def main() -> int:
    from benchmarks import daemon_run  # this module by its name, not __main__: steps must import it

    keys = migration_job().partitions_def.get_partition_keys()
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(dg.reconstructable(daemon_run.migration_job), instance=instance,
                            tags={RANGE_START: keys[0], RANGE_END: keys[-1]}) as result:
            ok = result.success
            steps = sum(1 for event in result.all_events if event.is_step_success)
    print(json.dumps({"ok": ok, "steps": steps}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
