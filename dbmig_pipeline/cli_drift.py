"""`dbmig drift`: the schema-drift state per entity, and `dbmig drift accept`.

Exit codes: 0 when nothing halts, 3 when breaking drift is pending (so a cron
job or CI step can tell), 2 for a user error (configuration, unreachable
database, an acceptance refused because the mapping is not fixed yet).
"""
from __future__ import annotations

import json
import sys

import click

from dbmig_pipeline.cli_common import _friendly_errors, _settings
from dbmig_pipeline.db import open_databases
from dbmig_pipeline.engine.drift_api import DriftAcceptRefused, accept_entities, inspect_entities
from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES, get_entity
from dbmig_pipeline.schema import prepare_destination
from dbmig_pipeline.settings import ConfigError
from dbmig_pipeline.identity import current_operator

BREAKING_EXIT = 3



def _specs(entities: tuple[str, ...]):
    unknown = [e for e in entities if e not in ENTITY_NAMES]
    if unknown:
        raise ConfigError(f"unknown entity {unknown[0]!r}; choose from {', '.join(ENTITY_NAMES)}")
    return [get_entity(e) for e in entities] if entities else list(ENTITIES)


@click.group(invoke_without_command=True)
@click.option("--entity", "entities", multiple=True, help="Only this entity (repeatable). Default: all six.")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
@click.pass_context
@_friendly_errors
def drift(ctx: click.Context, entities: tuple[str, ...], as_json: bool) -> None:
    """Schema drift per entity: ok, additive (warned) or breaking (halts); exit 3 if anything halts."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    specs = _specs(entities)
    databases = open_databases(settings)
    try:
        prepare_destination(databases.dest)
        reports = inspect_entities(databases.source, databases.dest, specs, settings.drift_strictness,
                                   operator=current_operator())
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], default=str))
    else:
        click.echo(f"strictness: {settings.drift_strictness} (DBMIG_DRIFT_STRICTNESS)")
        for report in reports:
            click.echo(f"{report.entity:<16} {report.state}")
            for d in report.differences:
                click.echo(f"  - {'HALTS' if d.halts(report.strictness) else 'warning'}: {d.describe()}")
        if any(r.halts for r in reports):
            click.echo("breaking drift halts the entities above: fix the mapping, then "
                       "`dbmig drift accept --entity E`, then backfill with "
                       "`dbmig migrate --entity E --from YYYY-MM-DD --to YYYY-MM-DD --full`.")
    if any(r.halts for r in reports):
        sys.exit(BREAKING_EXIT)


@drift.command()
@click.option("--entity", "entities", multiple=True, help="Only this entity (repeatable). Default: all six.")
@click.option("--json", "as_json", is_flag=True, help="Print what was accepted as JSON.")
@_friendly_errors
def accept(entities: tuple[str, ...], as_json: bool) -> None:
    """Accept the current schema of the entities (after the mapping is fixed), recorded with who and when."""
    settings = _settings()
    specs = _specs(entities)
    databases = open_databases(settings)
    try:
        prepare_destination(databases.dest)
        try:
            accepted = accept_entities(databases.source, databases.dest, specs, by=current_operator())
        except DriftAcceptRefused as exc:  # the mapping is not fixed yet: the user's to fix, exit 2
            raise ConfigError(str(exc)) from None
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in accepted], default=str))
        return
    for report in accepted:
        changes = f"{len(report.differences)} difference(s) accepted" if report.differences else "unchanged"
        click.echo(f"{report.entity:<16} accepted ({changes}) as {report.key} by {current_operator()}")
