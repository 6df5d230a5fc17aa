"""The Dagster instance the CLI and the UI share.

Invariant: `DAGSTER_HOME` holds the project's dagster.yaml and
`DAGSTER_PG_URL` names the run storage (the embedded database by default)
before any Dagster instance is opened, so runs launched from the terminal
show up in the UI.
"""
from __future__ import annotations

import os
from pathlib import Path

from dbmig_pipeline.db import Endpoints
from dbmig_pipeline.settings import Settings, normalise_url, record_partition_start

_PROJECT_INSTANCE_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
_FALLBACK_INSTANCE_YAML = """\
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
run_coordinator:
  module: dbmig_pipeline.run_queue
  class: EntityRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - {key: dbmig/entity.offices, limit: 1}
      - {key: dbmig/entity.doctors, limit: 1}
      - {key: dbmig/entity.patients, limit: 1}
      - {key: dbmig/entity.orders, limit: 1}
      - {key: dbmig/entity.jaws, limit: 1}
      - {key: dbmig/entity.system_messages, limit: 1}
  pools:
    default_limit: 3
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 60
telemetry:
  enabled: false
nux:
  enabled: false
"""


def prepare_dagster_home(settings: Settings, endpoints: Endpoints) -> dict[str, str]:
    """Write $DAGSTER_HOME/dagster.yaml and export the variables Dagster reads; returns them."""
    record_partition_start(settings)
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    text = _PROJECT_INSTANCE_YAML.read_text() if _PROJECT_INSTANCE_YAML.exists() else _FALLBACK_INSTANCE_YAML
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    exported = {
        "DAGSTER_HOME": str(home),
        # With the psycopg2 driver: dagster-postgres hands the URL to SQLAlchemy, which reads a bare
        # postgresql:// as psycopg 3 (not installed).
        "DAGSTER_PG_URL": normalise_url(endpoints.dagster_url),
        # Child processes (daemon, run workers, code servers) must reach the same databases.
        "DBMIG_SOURCE_URL": normalise_url(endpoints.source_url),
        "DBMIG_DEST_URL": normalise_url(endpoints.dest_url),
        "DBMIG_HOME": str(settings.home),
        "DBMIG_PARTITION_START": settings.partition_start.isoformat(),
    }
    os.environ.update(exported)
    return exported
