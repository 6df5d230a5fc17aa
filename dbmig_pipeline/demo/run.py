"""`dbmig demo` and `dbmig dev`: the product on the embedded databases.

The demo only ever writes to the embedded server: it re-seeds the source and
resets the target, so it refuses to run when a real database URL is set.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import sqlalchemy as sa

from dbmig_pipeline import startup
from dbmig_pipeline.db import open_databases
from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.run_queue import CODE_LOCATION
from dbmig_pipeline.schema import prepare_destination
from dbmig_pipeline.settings import ConfigError, Settings

#: The code location `dbmig dev` serves; loaded with -m, it is also the location's name (as in workspace.yaml).
CODE_LOCATION_MODULE = CODE_LOCATION

#: A differential workload: updated rows (timestamp bumped) and new rows.
_CHANGES_SQL = """
UPDATE public.patients SET notes = coalesce(notes, '') || ' (demo edit)', updated_at = now()
 WHERE id IN (SELECT id FROM public.patients WHERE status IN (0, 1, 2, 3, 9) ORDER BY md5(id::text) LIMIT :n);
INSERT INTO public.offices (created_at, updated_at, name, city, country, phone, email, is_active)
SELECT now(), now(), 'Demo office ' || g, 'Springfield', 'US', '(555) 010-' || lpad(g::text, 4, '0'),
       'office' || g || '@example.com', true
  FROM generate_series(1, :new_offices) AS g;
"""


def _refuse_real_databases(settings: Settings) -> None:
    for side in (settings.source, settings.dest):
        if side.url:
            raise ConfigError(
                f"dbmig demo re-seeds the source and resets the target, so it only runs on the embedded "
                f"databases: unset {side.env_name} (use `dbmig migrate` against real databases)"
            )


def _reset_target(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS app CASCADE")
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS dbmig CASCADE")


def _report(echo: Callable[[str], None], title: str, outcome, seconds: float) -> None:
    from dbmig_pipeline.cli_common import print_outcome as _print_outcome

    echo(f"\n== {title}: {seconds:.1f} s ==")
    _print_outcome(outcome)


def run_demo(settings: Settings, *, scale: float, changes: int, echo: Callable[[str], None]) -> None:
    with startup.building():  # imports Dagster
        from dbmig_pipeline.launch import run_migration

    _refuse_real_databases(settings)
    databases = open_databases(settings)
    try:
        echo(f"embedded PostgreSQL in {databases.endpoints.embedded.pgdata}")
        started = time.monotonic()
        counts = seed_legacy(databases.endpoints.source_url, scale=scale, force=True, progress=None)
        echo(f"seeded {sum(counts.values()):,} legacy rows ({', '.join(f'{k} {v:,}' for k, v in counts.items())}) "
             f"in {time.monotonic() - started:.1f} s")
        _reset_target(databases.dest)
        prepare_destination(databases.dest)

        started = time.monotonic()
        full = run_migration(databases)
        _report(echo, "full load", full, time.monotonic() - started)

        writer = sa.create_engine(databases.endpoints.source_url)
        try:
            with writer.begin() as conn:
                for statement in filter(str.strip, _CHANGES_SQL.split(";")):
                    conn.execute(sa.text(statement), {"n": changes, "new_offices": max(changes // 20, 1)})
        finally:
            writer.dispose()
        echo(f"\nchanged {changes:,} patients and added {max(changes // 20, 1):,} offices in the source")

        started = time.monotonic()
        delta = run_migration(databases)
        _report(echo, "differential sync", delta, time.monotonic() - started)
        echo("\nDagster runs are in the instance: `dbmig dev` opens the UI; `dbmig status` summarises.")
        if not (full.ok and delta.ok):
            raise SystemExit(1)
    finally:
        databases.dispose()


def run_dev(settings: Settings, *, port: int, scale: float, echo: Callable[[str], None],
            read_only: bool = False) -> None:
    """Start the Dagster UI and daemon on the configured databases (embedded by default).

    `read_only`: the webserver alone, in Dagster's read-only mode (no launching, no toggling
    schedules), and nothing seeded or created: a UI for people who may watch but not act.
    """
    from dbmig_pipeline.instance import prepare_dagster_home

    databases = open_databases(settings)
    try:
        if settings.source.url is None and not read_only:
            with databases.source.connect() as conn:
                has_data = conn.execute(sa.text("SELECT to_regclass('public.offices') IS NOT NULL")).scalar_one()
            if not has_data:
                echo(f"seeding demo data (scale {scale}) into the embedded source …")
                seed_legacy(databases.endpoints.source_url, scale=scale, progress=None)
        if not read_only:
            prepare_destination(databases.dest)
        env = {**os.environ, **prepare_dagster_home(settings, databases.endpoints)}
    finally:
        databases.dispose()
    echo(f"Dagster UI{' (read-only)' if read_only else ''} on http://127.0.0.1:{port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "dagster", "dev", "-m", CODE_LOCATION_MODULE, "-h", "127.0.0.1", "-p", str(port)]
    if read_only:
        command = [sys.executable, "-m", "dagster_webserver", "-m", CODE_LOCATION_MODULE,
                   "-h", "127.0.0.1", "-p", str(port), "--read-only"]
    raise SystemExit(_serve(command, env))


def _serve(command: list[str], env: dict[str, str]) -> int:
    """Run Dagster's processes until they end. A SIGTERM to `dbmig dev` alone (`kill`, a supervisor, `docker
    stop`) is passed on, so that they shut down with it instead of running on orphaned, holding the port."""
    child = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the whole process group: wait for Dagster's shutdown
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
