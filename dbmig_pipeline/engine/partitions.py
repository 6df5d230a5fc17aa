"""Daily partitions over the cursor column, as half-open windows [start, end).

The first partition also owns everything dated earlier (and rows whose
cursor is NULL), the newest everything dated later, so no row falls outside
every partition.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Partition:
    key: str  # YYYY-MM-DD
    start: datetime | None  # None: open towards the past (first partition)
    end: datetime | None  # None: open towards the future (newest partition)

    @property
    def is_first(self) -> bool:
        return self.start is None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def partition_keys(first_day: date, today: date | None = None) -> list[str]:
    """Every daily key from `first_day` to today (UTC), inclusive."""
    today = today or datetime.now(UTC).date()
    days = max((today - first_day).days, 0) + 1
    return [(first_day + timedelta(days=i)).isoformat() for i in range(days)]


def partitions_for(keys: list[str], all_keys: list[str]) -> list[Partition]:
    """Windows for `keys` (contiguous, ordered) within the full key list `all_keys`."""
    if not keys:
        return []
    first_key, newest_key = all_keys[0], all_keys[-1]
    unknown = [k for k in keys if k not in all_keys]
    if unknown:
        raise ValueError(
            f"partition {unknown[0]} is outside {first_key} … {newest_key} (DBMIG_PARTITION_START sets the first)"
        )
    result = []
    for key in sorted(keys):
        day = date.fromisoformat(key)
        start = None if key == first_key else _midnight(day)
        end = None if key == newest_key else _midnight(day + timedelta(days=1))
        result.append(Partition(key, start, end))
    return result


def key_range(all_keys: list[str], first: str, last: str) -> list[str]:
    """Keys from `first` to `last` inclusive; bounds outside the range are clamped."""
    if first > last:
        raise ValueError(f"the range starts ({first}) after it ends ({last})")
    return [k for k in all_keys if first <= k <= last] or [all_keys[0] if last < all_keys[0] else all_keys[-1]]


def key_of(ts: datetime | None, all_keys: list[str]) -> str:
    """The partition key that owns a cursor value (NULL belongs to the first)."""
    if ts is None:
        return all_keys[0]
    key = ts.astimezone(UTC).date().isoformat()
    return min(max(key, all_keys[0]), all_keys[-1])


def keys_of(stamps: pd.Series, all_keys: list[str]) -> pd.Series:
    """`key_of` for a whole column at once (a binary search over the day boundaries)."""
    boundaries = np.array([np.datetime64(k, "us") for k in all_keys[1:]], dtype="datetime64[us]")  # UTC midnights
    values = pd.to_datetime(stamps, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    index = np.searchsorted(boundaries, values, side="right")
    index[np.isnat(values)] = 0
    return pd.Series(np.asarray(all_keys, dtype=object)[index], index=stamps.index)
