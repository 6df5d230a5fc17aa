"""`dbmig errors`, `dbmig errors retry` and `dbmig prune`: operating the quarantine and the audit log.

Exit codes: 0 done; 1 `errors retry` could not retry an entity (it stopped:
an integrity conflict still in the source, or a database that stayed down); 2
a user error (configuration, unreachable database, a bad option value).
"""
from __future__ import annotations

import json
import sys
from datetime import datetime

import click

from dbmig_pipeline.cli_common import _friendly_errors, _settings
from dbmig_pipeline.db import open_databases
from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES
from dbmig_pipeline.entities.spec import CATEGORIES
from dbmig_pipeline.identity import current_operator
from dbmig_pipeline.schema import prepare_destination

_SHOWN_IDS = 20

_entity_option = click.option("--entity", "entities", multiple=True, type=click.Choice(ENTITY_NAMES),
                              help="Only this entity (repeatable). Default: all six.")
_category_option = click.option("--category", type=click.Choice(CATEGORIES),
                                help="Only rows held for this reason (missing_parent: parked; the others: quarantined).")


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "-"


def _ids(ids) -> str:
    ids = sorted(ids)
    more = f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
    return ", ".join(map(str, ids[:_SHOWN_IDS])) + more


@click.group(invoke_without_command=True)
@_entity_option
@_category_option
@click.option("--open/--all", "open_only", default=True, show_default=True,
              help="Only rows still held, or also those resolved since.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True, help="Rows to show at most.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
@_friendly_errors
def errors(ctx: click.Context, entities, category, open_only: bool, limit: int, as_json: bool) -> None:
    """Quarantined and parked source rows (dbmig.row_errors); `dbmig errors retry` tries them again."""
    from dbmig_pipeline.engine.quarantine import list_errors

    if ctx.invoked_subcommand is not None:
        return
    databases = open_databases(_settings())
    try:
        prepare_destination(databases.dest)
        rows, total = list_errors(databases.dest, ENTITY_NAMES, entities=entities, category=category,
                                  open_only=open_only, limit=limit)
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps({"total": total, "rows": rows}, default=str))
        return
    click.echo(f"{'entity':<16} {'legacy_id':>10}  {'category':<14} {'attempts':>8}  {'first seen':<19}  "
               f"{'last seen':<19}  {'resolved':<19}  detail")
    for r in rows:
        click.echo(f"{r['entity']:<16} {r['legacy_id']:>10}  {r['category']:<14} {r['attempts']:>8}  "
                   f"{_when(r['first_seen_at']):<19}  {_when(r['last_seen_at']):<19}  {_when(r['resolved_at']):<19}  "
                   f"{r['detail']}")
    shown = f" ({len(rows)} shown; --limit for more)" if len(rows) < total else ""
    click.echo(f"{total} {'open ' if open_only else ''}row(s){shown}")
    if open_only and total:
        click.echo("after fixing the source (or the mapping): `dbmig errors retry` (parents first)")


@errors.command()
@_entity_option
@_category_option
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@_friendly_errors
def retry(entities, category, as_json: bool) -> None:
    """Re-read the held rows from the source and sync them again, parents first; resolved rows are marked."""
    from dbmig_pipeline.engine.quarantine import retry_errors
    from dbmig_pipeline.engine.sync import RunInfo

    settings = _settings()
    specs = [spec for spec in ENTITIES if not entities or spec.name in entities]
    run = RunInfo(run_id=None, operator=current_operator(), batch_size=settings.batch_size,
                  batch_retries=settings.batch_retries,
                  mask_key=settings.mask_key if settings.mask_pii else None)  # written like a run writes
    databases = open_databases(settings)
    try:
        prepare_destination(databases.dest)
        outcomes = retry_errors(databases.source, databases.dest, specs, {s.name: s for s in ENTITIES}, run,
                                category=category)
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps([{**o.summary(), "entity": o.entity, "loaded_ids": o.loaded,
                                "still_open": {str(k): v for k, v in o.still_open.items()}} for o in outcomes]))
    elif not outcomes:
        click.echo("nothing to retry: no open row errors" + (f" of category {category}" if category else ""))
    for o in [] if as_json else outcomes:
        click.echo(f"{o.entity:<16} retried {len(o.retried):>6,}  loaded {len(o.loaded):>6,}  "
                   f"still held {len(o.still_open):>6,}")
        if o.loaded:
            click.echo(f"  resolved (loaded): legacy ids {_ids(o.loaded)}")
        for held in sorted(set(o.still_open.values())):
            click.echo(f"  still held ({held}): legacy ids {_ids(i for i, c in o.still_open.items() if c == held)}")
        if o.error:
            click.echo(f"  FAILED: {o.error}")
    if any(o.error for o in outcomes):
        sys.exit(1)


def _retention(ctx, param, value: str):
    from dbmig_pipeline.engine.retention import parse_retention

    try:
        return value, parse_retention(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--older-than", "older_than", required=True, callback=_retention, metavar="AGE",
              help="Retention of batch-level detail: Nd (days) or Nh (hours), e.g. 90d.")
@_friendly_errors
def prune(older_than) -> None:
    """Remove batch-level audit detail older than AGE; per-run summaries are kept."""
    from dbmig_pipeline.engine.retention import prune_audit_detail

    label, retention = older_than
    databases = open_databases(_settings())
    try:
        prepare_destination(databases.dest)
        removed = prune_audit_detail(databases.dest, retention, label=label.strip(), operator=current_operator())
    finally:
        databases.dispose()
    click.echo(f"removed {removed:,} audit detail row(s) older than {label.strip()}; summaries kept")
