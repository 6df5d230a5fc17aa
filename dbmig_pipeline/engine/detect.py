"""Differential detection: what a sync would move now, without writing anything.

The same keyset pass as a sync, from the same resume point, comparing each
row's hash with the ledger; only counts and ranges are kept.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import pandas as pd

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.extract import HASH_COLUMN, Window, fetch_batch, position_after
from dbmig_pipeline.engine.partitions import partitions_for
from dbmig_pipeline.engine.plan import pending_keys, start_position
from dbmig_pipeline.entities.spec import EntitySpec


@dataclass
class PendingChanges:
    entity: str
    partitions: tuple[str, str]
    rows_scanned: int = 0
    new: int = 0
    changed: int = 0
    id_range: tuple[int, int] | None = None
    oldest_change: datetime | None = None
    newest_change: datetime | None = None

    @property
    def to_move(self) -> int:
        return self.new + self.changed

    def summary(self) -> dict:
        data = asdict(self)
        data["to_move"] = self.to_move
        return data


def _read_control(dst_conn, entity: str, keys: list[str]) -> dict:
    with dst_conn.cursor() as cur:
        cur.execute("SELECT to_regclass('dbmig.migration_control') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        rows = bk.read_control(cur, entity, keys)
    dst_conn.rollback()
    return rows


def _recorded(dst_conn, entity: str, ids: list[int]) -> dict[int, str]:
    with dst_conn.cursor() as cur:
        cur.execute("SELECT to_regclass('dbmig.row_ledger') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        hashes = bk.recorded_hashes(cur, entity, ids)
    dst_conn.rollback()
    return hashes


def detect_pending(src_conn, dst_conn, dest_engine, spec: EntitySpec, all_keys: list[str],
                   lookback: timedelta, batch_size: int) -> PendingChanges:
    keys = pending_keys(dest_engine, spec.name, all_keys, lookback)
    partitions = partitions_for(keys, all_keys)
    result = PendingChanges(spec.name, (keys[0], keys[-1]))
    control = _read_control(dst_conn, spec.name, keys)
    position = start_position(control, partitions, spec, "differential", lookback)
    window = Window(partitions[0].start, partitions[-1].end)
    while True:
        with src_conn.cursor() as cur:
            frame = fetch_batch(cur, spec, window, position, batch_size)
        src_conn.rollback()
        if frame.empty:
            if position is not None and position.in_nulls:
                position = None
                continue
            break
        position = position_after(src_conn, spec, frame, position)
        _tally(result, frame, _recorded(dst_conn, spec.name, [int(i) for i in frame["id"]]), spec)
    return result


def _tally(result: PendingChanges, frame: pd.DataFrame, recorded: dict[int, str], spec: EntitySpec) -> None:
    result.rows_scanned += len(frame)
    previous = frame["id"].map(recorded)
    is_new = previous.isna()
    is_changed = ~is_new & (previous.astype(object) != frame[HASH_COLUMN].astype(str))
    moving = frame[is_new | is_changed]
    result.new += int(is_new.sum())
    result.changed += int(is_changed.sum())
    if moving.empty:
        return
    lo, hi = int(moving["id"].min()), int(moving["id"].max())
    if result.id_range:
        lo, hi = min(lo, result.id_range[0]), max(hi, result.id_range[1])
    result.id_range = (lo, hi)
    stamps = moving[spec.cursor_column].dropna()
    if len(stamps):
        oldest, newest = stamps.min(), stamps.max()
        result.oldest_change = min(oldest, result.oldest_change) if result.oldest_change else oldest
        result.newest_change = max(newest, result.newest_change) if result.newest_change else newest
