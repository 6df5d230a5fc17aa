"""Schema-drift operations over engines, for callers outside a sync pass: the
`dbmig drift` command, the asset checks and the drift sensor.

Invariant: each entity is compared (or accepted) in its own pair of
transactions, committed on the destination only when the whole entity is
done, so a failure leaves no half-accepted snapshot.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import drift
from dbmig_pipeline.engine.drift import DriftAcceptRefused, DriftReport
from dbmig_pipeline.entities.spec import EntitySpec

__all__ = ["DriftAcceptRefused", "DriftReport", "accept_entities", "inspect_entities", "record_detected"]


@contextmanager
def _cursors(source: Engine, dest: Engine) -> Iterator[tuple]:
    src, dst = source.raw_connection(), dest.raw_connection()
    try:
        with src.cursor() as src_cur, dst.cursor() as dst_cur:
            yield src_cur, dst_cur
        dst.commit()
    finally:
        for conn in (src, dst):
            try:
                conn.rollback()
            finally:
                conn.close()


def inspect_entities(source: Engine, dest: Engine, specs: Sequence[EntitySpec], strictness: str, *,
                     operator: str, run_id: str | None = None) -> list[DriftReport]:
    """Each entity compared with its accepted snapshots (first contact accepts, as a run would)."""
    reports = []
    for spec in specs:
        with _cursors(source, dest) as (src_cur, dst_cur):
            reports.append(drift.inspect(src_cur, dst_cur, spec, strictness, operator=operator, run_id=run_id))
    return reports


def accept_entities(source: Engine, dest: Engine, specs: Sequence[EntitySpec], *, by: str) -> list[DriftReport]:
    """Accept the current schema of each entity; returns what each acceptance replaced."""
    accepted = []
    for spec in specs:
        with _cursors(source, dest) as (src_cur, dst_cur):
            accepted.append(drift.accept(src_cur, dst_cur, spec, by=by))
    return accepted


def record_detected(dest: Engine, report: DriftReport, *, operator: str) -> None:
    """An audit row `drift_detected` for drift seen outside a run (by the sensor)."""
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            drift.record(cur, "drift_detected", report, operator=operator)
        conn.commit()
    finally:
        conn.close()
