"""The run queue: every queued run carries the tag of each entity it migrates, whoever launched it.

Why: dagster.yaml holds each `dbmig/entity.<name>` run tag to one run, but
only `migrate_all` carried those tags (as job tags). A materialisation or a
backfill launched from the asset graph runs Dagster's implicit asset job,
which has none (run tags cannot come from assets: dagster-io/dagster#15752),
so two passes of one entity left the queue together and the second failed
on the entity's pass lock instead of waiting. This coordinator adds the tags
before the run is queued; the entities are the limits dagster.yaml
configures, so the webserver and daemon import this module but not the code
location (decision 0015).
"""
from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

ENTITY_TAG_PREFIX = "dbmig/entity."  # one namespace only: Dagster tag keys allow a single "/"
ENTITY_TAG_VALUE = "migrating"
#: The asset that repairs every entity in turn (reconciliation.py), each under the entity's pass lock.
RECONCILE_ASSET = "reconciliation"
#: dbmig's code location, named after its module (`dbmig dev` loads it with -m; workspace.yaml sets no name).
#: Runs of any other location on the instance are left as they are.
CODE_LOCATION = "dbmig_pipeline.definitions"


def entity_tags(entities: Iterable[str]) -> dict[str, str]:
    """Run tags that the queue's tag concurrency limits hold to one run per entity."""
    return {f"{ENTITY_TAG_PREFIX}{name}": ENTITY_TAG_VALUE for name in entities}


def tags_for_run(run: dg.DagsterRun, limited: Iterable[str]) -> dict[str, str]:
    """The entity tags of `limited` (tag keys) that a run of dbmig's code location should carry and lacks: the
    entities among its assets, all of them for a run of every asset or of the repair. None for the runs of
    other locations (their jobs and assets are not dbmig's, whatever their names)."""
    origin = run.remote_job_origin
    if origin is None or origin.location_name != CODE_LOCATION:
        return {}
    entities = {key.removeprefix(ENTITY_TAG_PREFIX) for key in limited if key.startswith(ENTITY_TAG_PREFIX)}
    selected = None if run.asset_selection is None else {key.to_user_string() for key in run.asset_selection}
    if selected is not None and RECONCILE_ASSET not in selected:
        entities &= selected
    return {key: value for key, value in entity_tags(sorted(entities)).items() if key not in run.tags}


class EntityRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queue, with the entity tags added to each run it is given."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        if run.status == dg.DagsterRunStatus.NOT_STARTED:
            limits = self._instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
            missing = tags_for_run(run, [limit["key"] for limit in limits])
            if missing:
                self._instance.add_run_tags(run.run_id, missing)
                context = context._replace(dagster_run=self._instance.get_run_by_id(run.run_id))
        return super().submit_run(context)
