"""`dbmig baseline`, `dbmig diff` and `dbmig reconcile`.

baseline and diff only read; reconcile repairs through a Dagster run, so
it is recorded in the instance like every migration.
"""
from __future__ import annotations

import json
import sys
from datetime import timedelta

import click

from dbmig_pipeline import startup
from dbmig_pipeline.cli_common import _friendly_errors, _settings
from dbmig_pipeline.db import open_databases
from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES

_entity_option = click.option("--entity", "entities", multiple=True, type=click.Choice(ENTITY_NAMES),
                              help="Only this entity (repeatable). Default: all six.")


def _selected(entities) -> list:
    return [spec for spec in ENTITIES if not entities or spec.name in entities]


def _format_range(value) -> str:
    return f"{value[0]}–{value[1]}" if value else "-"


@click.command()
@_entity_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_friendly_errors
def baseline(entities, as_json: bool) -> None:
    """Compare every source row's content hash with what was migrated (reads only)."""
    from dbmig_pipeline.engine.reports import baseline_report

    databases = open_databases(_settings())
    try:
        reports = [baseline_report(databases.source, databases.dest, spec).summary() for spec in _selected(entities)]
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps(reports, default=list))
        return
    click.echo(f"{'entity':<16} {'source':>10} {'new':>8} {'changed':>8} {'unchanged':>10} {'deleted':>8} "
               f"{'parked':>7} {'quarant.':>8}  differing ids")
    for r in reports:
        ranges = ", ".join(f"{kind} {_format_range(r[f'{kind}_id_range'])}" for kind in ("new", "changed", "deleted")
                           if r[f"{kind}_id_range"])
        click.echo(f"{r['entity']:<16} {r['source_rows']:>10,} {r['new']:>8,} {r['changed']:>8,} "
                   f"{r['unchanged']:>10,} {r['deleted']:>8,} {r['parked']:>7,} {r['quarantined']:>8,}  {ranges or '-'}")


@click.command()
@_entity_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_friendly_errors
def diff(entities, as_json: bool) -> None:
    """What a differential sync would move now: counts, id range, oldest/newest change (reads only)."""
    from dbmig_pipeline.assets import daily_partitions
    from dbmig_pipeline.engine.reports import pending_report

    settings = _settings()
    databases = open_databases(settings)
    try:
        all_keys = daily_partitions(settings).get_partition_keys()
        lookback = timedelta(seconds=settings.lookback_s)
        reports = [pending_report(databases.source, databases.dest, spec, all_keys, lookback,
                                  settings.batch_size).summary() for spec in _selected(entities)]
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps(reports, default=str))
        return
    click.echo(f"{'entity':<16} {'partitions':<23} {'scanned':>9} {'new':>8} {'changed':>8}  {'ids':<15} oldest … newest change")
    for r in reports:
        span = (f"{r['oldest_change']:%Y-%m-%d %H:%M:%S} … {r['newest_change']:%Y-%m-%d %H:%M:%S}"
                if r["oldest_change"] else "-")
        click.echo(f"{r['entity']:<16} {r['partitions'][0] + '…' + r['partitions'][1]:<23} {r['rows_scanned']:>9,} "
                   f"{r['new']:>8,} {r['changed']:>8,}  {_format_range(r['id_range']):<15} {span}")


@click.command()
@_entity_option
@click.option("--force-deletes", is_flag=True, help="Soft-delete even past the delete guard (the deletes are real).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_friendly_errors
def reconcile(entities, force_deletes: bool, as_json: bool) -> None:
    """Re-sync exactly the rows the baseline finds different: changed, new, deleted."""
    with startup.building():  # imports Dagster
        from dbmig_pipeline.launch import run_reconciliation

    databases = open_databases(_settings())
    try:
        run_id, ok, summaries, errors = run_reconciliation(databases, entities=list(entities) or None,
                                                           force_deletes=force_deletes)
    finally:
        databases.dispose()
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "ok": ok, "entities": summaries, "errors": errors}, default=list))
    else:
        click.echo(f"run {run_id}")
        for entity, s in summaries.items():
            click.echo(f"  {entity:<16} repaired {s.get('repaired', 0):>8,}  soft-deleted {s.get('soft_deleted', 0):>6,}  "
                       f"new {s.get('new', 0):>6,}  changed {s.get('changed', 0):>6,}  deleted {s.get('deleted', 0):>6,}")
        for error in errors:
            click.echo(f"  FAILED: {error}")
    if not ok:
        sys.exit(1)
