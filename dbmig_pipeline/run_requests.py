"""Run requests of the schedule and the sensors: one `migrate_all` run over a partition range.

A range is requested with the `dagster/asset_partition_range_*` tags, like
the CLI does, so a sync of many pending days is one keyset pass (the assets'
single-run backfill policy), never one run per day. It names its checks too:
given assets alone, Dagster runs every check of them, the full-table
reconciliation ones included, which `migrate_all` leaves to `reconcile_all`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import dagster as dg

from dbmig_pipeline.assets import FULL_TAG, OPERATOR_TAG
from dbmig_pipeline.checks import DRIFT_CHECK

LAUNCHED_BY_TAG = "dbmig/launched_by"
_WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


def range_request(*, run_key: str, keys: Sequence[str], entities: Sequence[str], launched_by: str,
                  full: bool = False) -> dg.RunRequest:
    tags = {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
        OPERATOR_TAG: launched_by,
        LAUNCHED_BY_TAG: launched_by,
    }
    if full:
        tags[FULL_TAG] = "true"
    return dg.RunRequest(run_key=run_key, tags=tags, asset_selection=[dg.AssetKey(e) for e in entities],
                         asset_check_keys=[dg.AssetCheckKey(dg.AssetKey(e), DRIFT_CHECK) for e in entities])


def waiting_run(instance: dg.DagsterInstance, job_name: str) -> str | None:
    """A run of the job still waiting in the queue: it will read every change when it starts.

    Only queued runs count: a run that is executing (or one a crash left
    marked as started) must not silence the automation.
    """
    ids = instance.get_run_ids(filters=dg.RunsFilter(job_name=job_name, statuses=_WAITING), limit=1)
    return ids[0] if ids else None


def digest(data: object) -> str:
    """A short stable fingerprint for run keys: same input, same key, whatever the process."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
