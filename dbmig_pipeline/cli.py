"""The `dbmig` command line.

Every command validates the configuration and reaches the databases it needs
before it writes anything; errors are printed as one clear message (with any
password masked) and a non-zero exit code, never as a traceback.
"""
from __future__ import annotations

import functools
import json
import logging
import sys
import time

import click

from dbmig_pipeline.db import DatabaseUnavailable, open_databases
from dbmig_pipeline.demo.embedded import EmbeddedServerError
from dbmig_pipeline.schema import SchemaMismatch, apply_control_schema, control_schema_version, ensure_target_schema
from dbmig_pipeline.settings import ConfigError, Settings, mask_url

#: Errors that are the user's to fix: printed as a message, exit code 2.
_USER_ERRORS = (ConfigError, DatabaseUnavailable, SchemaMismatch, EmbeddedServerError)


def _friendly_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _USER_ERRORS as exc:
            click.echo(f"dbmig: error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _settings() -> Settings:
    return Settings.from_env()


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
    """Show the configuration in use (passwords masked) and check both databases."""
    settings = _settings()
    databases = open_databases(settings)
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
        click.echo("both databases reached: ok")
    finally:
        databases.dispose()


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


if __name__ == "__main__":
    main()
