"""Read-only reports over all entities: baseline, pending changes, integrity.

Each opens its own connections and closes them; nothing is written.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine.baseline import Baseline, baseline_entity
from dbmig_pipeline.engine.detect import PendingChanges, detect_pending
from dbmig_pipeline.engine.integrity import IntegrityReport, check_references
from dbmig_pipeline.entities.spec import EntitySpec


def _ready(dest: Engine) -> bool:
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('dbmig.row_ledger') IS NOT NULL")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def baseline_report(source: Engine, dest: Engine, spec: EntitySpec) -> Baseline:
    if not _ready(dest):
        raise RuntimeError("the destination has no control schema yet: run `dbmig init` or `dbmig migrate` first")
    src, dst = source.raw_connection(), dest.raw_connection()
    try:
        return baseline_entity(src, dst, spec)
    finally:
        src.close()
        dst.close()


def pending_report(source: Engine, dest: Engine, spec: EntitySpec, all_keys: list[str], lookback: timedelta,
                   batch_size: int) -> PendingChanges:
    src, dst = source.raw_connection(), dest.raw_connection()
    try:
        return detect_pending(src, dst, dest, spec, all_keys, lookback, batch_size)
    finally:
        src.close()
        dst.close()


def integrity_report(source: Engine, dest: Engine, spec: EntitySpec,
                     specs_by_name: dict[str, EntitySpec]) -> IntegrityReport:
    src, dst = source.raw_connection(), dest.raw_connection()
    try:
        return check_references(src, dst, spec, specs_by_name)
    finally:
        src.close()
        dst.close()
