"""The `dbmig` command line.

Every command validates the configuration and reaches the databases it needs
before it writes anything; errors are printed as one clear message (with any
password masked) and a non-zero exit code, never as a traceback.
"""
from __future__ import annotations

import json
import logging
import sys
import time

import click

from dbmig_pipeline import cli_drift, cli_errors, cli_reconcile, cli_security, startup
from dbmig_pipeline.cli_common import _friendly_errors, _settings, print_outcome
from dbmig_pipeline.db import open_databases
from dbmig_pipeline.schema import apply_control_schema, control_schema_version, ensure_target_schema
from dbmig_pipeline.settings import ConfigError, mask_url

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
def main(verbose: bool) -> None:
    """dbmig keeps a new PostgreSQL database in step with a legacy one until cutover."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@_friendly_errors
def config() -> None:
    """Show the configuration in use (passwords masked); check all three databases and their roles."""
    settings = _settings()
    databases = open_databases(settings, dagster_storage=True)
    try:
        rows = [
            ("DBMIG_HOME", str(settings.home)),
            ("DAGSTER_HOME", str(settings.dagster_home)),
            ("source", mask_url(databases.endpoints.source_url)),
            ("destination", mask_url(databases.endpoints.dest_url)),
            ("dagster storage", mask_url(databases.endpoints.dagster_url)),
            ("embedded server", str(databases.endpoints.embedded.pgdata) if databases.endpoints.embedded else "not used"),
            ("batch size", str(settings.batch_size)),
            ("control schema version", str(control_schema_version(databases.dest))),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            click.echo(f"{key:<{width}}  {value}")
        click.echo("source, destination and dagster storage reached, two databases, "
                   "each role may do what dbmig needs: ok")
    finally:
        databases.dispose()


@main.command("env")
@_friendly_errors
def env_command() -> None:
    """Print shell exports for plain `dagster` commands: eval "$(dbmig env)".

    Variables you have not set yourself are printed with their values (the
    embedded defaults and DAGSTER_HOME); a URL you set is re-exported by
    reference, with the psycopg2 driver, so no password of yours is ever echoed.
    """
    import os
    import shlex

    from dbmig_pipeline.instance import prepare_dagster_home

    settings = _settings()
    before = dict(os.environ)
    databases = open_databases(settings)
    try:
        exported = prepare_dagster_home(settings, databases.endpoints)
    finally:
        databases.dispose()
    for name, value in exported.items():
        if not before.get(name):
            click.echo(f"export {name}={shlex.quote(value)}")
        elif name.endswith("_URL") and not before[name].strip().startswith(_PSYCOPG2):
            click.echo(_with_psycopg2(name))


#: The scheme every exported URL carries: SQLAlchemy (and so dagster-postgres) reads a bare postgresql://
#: as psycopg 3, which is not installed.
_PSYCOPG2 = "postgresql+psycopg2://"


def _with_psycopg2(name: str) -> str:
    """A shell line that gives the user's own `name` the psycopg2 scheme in place (postgresql:// or
    postgres://, validated by the settings): the shell fills in the rest, so the password is never printed."""
    return f'export {name}="{_PSYCOPG2}${{{name}#*://}}"'


@main.command()
@_friendly_errors
def init() -> None:
    """Verify or create the target schema `app` and bring the control schema `dbmig` up to date."""
    settings = _settings()
    databases = open_databases(settings)
    try:
        created = ensure_target_schema(databases.dest)
        applied = apply_control_schema(databases.dest)
        click.echo("target schema app: " + ("created" if created else "present and matches the contract"))
        click.echo(
            "control schema dbmig: "
            + (f"upgraded to version {applied[-1]}" if applied else f"at version {control_schema_version(databases.dest)}")
        )
    finally:
        databases.dispose()


@main.command()
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="1.0 is about 3.5 million rows.")
@click.option("--random-seed", type=int, default=42, show_default=True, help="Same seed, same data.")
@click.option("--collisions", is_flag=True, help="Add order_no pairs that collide after upper/trim (they stop the orders entity).")
@click.option("--force", is_flag=True, help="Replace the rows of a source that already has legacy data.")
@click.option("--json", "as_json", is_flag=True, help="Print the row counts as JSON.")
@_friendly_errors
def seed(scale: float, random_seed: int, collisions: bool, force: bool, as_json: bool) -> None:
    """Fill the legacy source with synthetic data covering every case of the mapping."""
    from dbmig_pipeline.demo.seed import SeedRefused, seed_legacy

    settings = _settings()
    databases = open_databases(settings)
    try:
        started = time.monotonic()
        try:
            counts = seed_legacy(
                databases.endpoints.source_url,
                scale=scale,
                random_seed=random_seed,
                collisions=collisions,
                force=force,
                progress=None if as_json else click.echo,
            )
        except SeedRefused as exc:
            raise ConfigError(str(exc)) from None
        if as_json:
            click.echo(json.dumps(counts))
        else:
            total = sum(counts.values())
            click.echo(f"seeded {total:,} rows into {mask_url(databases.endpoints.source_url)} "
                       f"in {time.monotonic() - started:.1f} s")
    finally:
        databases.dispose()


@main.command()
@click.option("--entity", "entities", multiple=True, help="Only this entity (repeatable). Default: all six, parents first.")
@click.option("--partition", help="One daily partition, YYYY-MM-DD.")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First partition of a range.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last partition of a range.")
@click.option("--full", is_flag=True, help="Re-read the whole window instead of starting at the saved cursor "
                                           "(backfills); without --partition or --from/--to, every partition.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@_friendly_errors
def migrate(entities, partition, date_from, date_to, full, as_json) -> None:
    """Move what changed. With no options: everything pending, in dependency order."""
    with startup.building():  # imports Dagster
        from dbmig_pipeline.launch import run_migration

    if partition and (date_from or date_to):
        raise ConfigError("give either --partition or --from/--to, not both")
    settings = _settings()
    databases = open_databases(settings, dagster_storage=True)
    try:
        outcome = run_migration(
            databases, entities=list(entities) or None, partition=partition,
            date_from=date_from.date() if date_from else None, date_to=date_to.date() if date_to else None,
            full=full, progress=not as_json,
        )
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps({"run_id": outcome.run_id, "partitions": [outcome.keys[0], outcome.keys[-1]],
                               "entities": [e.__dict__ for e in outcome.entities]}, default=str))
    else:
        print_outcome(outcome)
    if not outcome.ok:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_friendly_errors
def status(as_json: bool) -> None:
    """Per entity: watermark, target rows, parked, quarantined, last run and its outcome, a pass running now."""
    from dbmig_pipeline.engine.pass_lock import PassHolder
    from dbmig_pipeline.engine.status import entity_status
    from dbmig_pipeline.entities import ENTITIES

    settings = _settings()
    databases = open_databases(settings)
    try:
        rows = entity_status(databases.dest, list(ENTITIES))
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps(rows, default=str))
        return
    click.echo(f"{'entity':<16} {'watermark':<26} {'rows':>10} {'deleted':>8} {'parked':>7} {'quarant.':>8}  last run")
    for r in rows:
        watermark = r["watermark"].isoformat(timespec="seconds") if r["watermark"] else "-"
        last = f"{r['last_outcome']} {r['last_run_at']:%Y-%m-%d %H:%M:%S} ({r['last_run']})" if r["last_run"] else "never"
        if r["running"]:
            last += f"; a pass running now ({PassHolder(**r['running']).describe()})"
        click.echo(f"{r['entity']:<16} {watermark:<26} {r['target_rows']:>10,} {r['deleted_rows']:>8,} "
                   f"{r['parked']:>7,} {r['quarantined']:>8,}  {last}")


@main.command()
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True)
@click.option("--changes", type=click.IntRange(min=0), default=200, show_default=True,
              help="Source rows to change between the full load and the differential sync.")
@_friendly_errors
def demo(scale: float, changes: int) -> None:
    """Embedded databases, synthetic data, full load, a change, a differential sync, a report."""
    from dbmig_pipeline.demo.run import run_demo

    run_demo(_settings(), scale=scale, changes=changes, echo=click.echo)


@main.command()
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Demo data to seed when the embedded source is empty.")
@click.option("--read-only", is_flag=True,
              help="Watch-only UI: Dagster's read-only webserver (no launching, no schedule toggles), no daemon.")
@_friendly_errors
def dev(port: int, scale: float, read_only: bool) -> None:
    """Embedded databases with demo data, then the Dagster UI on http://127.0.0.1:PORT."""
    from dbmig_pipeline.demo.run import run_dev

    run_dev(_settings(), port=port, scale=scale, echo=click.echo, read_only=read_only)


# Commands of other modules register here.
for _command in (cli_reconcile.baseline, cli_reconcile.diff, cli_reconcile.reconcile, cli_drift.drift,
                 cli_security.grants, cli_errors.errors, cli_errors.prune):
    main.add_command(_command)

if __name__ == "__main__":
    main()
