"""What every `dbmig` command shares: settings, friendly errors, outcome printing.

Its own module so that command modules can import it without importing the
command group (which imports them).
"""
from __future__ import annotations

import functools
import sys

import click
import psycopg2
from sqlalchemy.exc import DBAPIError

from dbmig_pipeline.db import DatabaseUnavailable, privilege_refusal
from dbmig_pipeline.demo.embedded import EmbeddedServerError
from dbmig_pipeline.engine.drift_api import DriftAcceptRefused
from dbmig_pipeline.grants import GrantsRefused
from dbmig_pipeline.schema import SchemaMismatch
from dbmig_pipeline.settings import ConfigError, Settings

#: Errors that are the user's to fix: printed as a message, exit code 2.
_USER_ERRORS = (ConfigError, DatabaseUnavailable, SchemaMismatch, EmbeddedServerError, DriftAcceptRefused,
                GrantsRefused)


def _friendly_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _USER_ERRORS as exc:
            click.echo(f"dbmig: error: {exc}", err=True)
            sys.exit(2)
        except (DBAPIError, psycopg2.Error) as exc:
            refused = privilege_refusal(exc)  # a privilege the start-up checks could not foresee
            if refused is None:
                raise
            click.echo(f"dbmig: error: {refused}", err=True)
            sys.exit(2)

    return wrapper


def _settings() -> Settings:
    return Settings.from_env()


def _stale_note(stale: int) -> str:
    """Rows the no-regression guard kept out: the target holds a version with a later `updated_at`
    (written by an overlapping run, or a source timestamp that went backwards, e.g. a row once dated in
    the future): reconcile writes the source's current version."""
    if not stale:
        return ""
    return (f"  ({stale:,} not written: the target holds a version with a later updated_at; "
            "`dbmig reconcile` takes the source's)")


def print_outcome(outcome) -> None:
    click.echo(f"run {outcome.run_id} (partitions {outcome.keys[0]} … {outcome.keys[-1]})")
    for entity in outcome.entities:
        if entity.ok:
            m = entity.metadata
            click.echo(
                f"  {entity.entity:<16} ok      read {m.get('rows_read', 0):>9,}  written {m.get('rows_written', 0):>9,}  "
                f"unchanged {m.get('rows_unchanged', 0):>9,}  parked {m.get('rows_parked', 0):>6,}  "
                f"quarantined {m.get('rows_quarantined', 0):>6,}  {m.get('rows_per_second', 0):>9,.0f} rows/s"
                + _stale_note(m.get("rows_stale_skipped", 0))
            )
        else:
            click.echo(f"  {entity.entity:<16} FAILED  {entity.error}")


