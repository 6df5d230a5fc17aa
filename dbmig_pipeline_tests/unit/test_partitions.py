"""Partition windows: half-open, the first and newest open-ended, every row owned."""
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest

from dbmig_pipeline.engine.partitions import key_of, key_range, keys_of, partition_keys, partitions_for

KEYS = partition_keys(date(2024, 1, 1), date(2024, 1, 5))


def test_keys_cover_start_to_today_inclusive():
    assert KEYS == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]


def test_first_and_newest_windows_are_open_ended():
    first, middle, newest = partitions_for(["2024-01-01", "2024-01-03", "2024-01-05"], KEYS)
    assert first.start is None and first.end == datetime(2024, 1, 2, tzinfo=UTC)
    assert middle.start == datetime(2024, 1, 3, tzinfo=UTC) and middle.end == datetime(2024, 1, 4, tzinfo=UTC)
    assert newest.start == datetime(2024, 1, 5, tzinfo=UTC) and newest.end is None


def test_unknown_partition_is_refused_naming_the_range():
    with pytest.raises(ValueError, match="2024-01-01 … 2024-01-05"):
        partitions_for(["2023-12-31"], KEYS)


def test_key_range_clamps_and_refuses_reversed_ranges():
    assert key_range(KEYS, "2023-01-01", "2024-01-02") == ["2024-01-01", "2024-01-02"]
    with pytest.raises(ValueError):
        key_range(KEYS, "2024-01-03", "2024-01-02")


STAMPS = [
    datetime(2019, 5, 1, tzinfo=UTC),  # before the start: first partition
    datetime(2024, 1, 2, 23, 59, tzinfo=timezone(timedelta(hours=-2))),  # 01:59 UTC on the 3rd
    None,  # NULL cursor: first partition
    datetime(2024, 1, 3, 0, 0, tzinfo=UTC),  # exactly midnight: the new day
    datetime(2024, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2031, 1, 1, tzinfo=UTC),  # in the future: newest partition
]


def test_key_of_assigns_every_row_a_partition():
    assert [key_of(ts, KEYS) for ts in STAMPS] == [
        "2024-01-01", "2024-01-03", "2024-01-01", "2024-01-03", "2024-01-02", "2024-01-05"]


def test_keys_of_agrees_with_key_of():
    assert list(keys_of(pd.Series(STAMPS, dtype=object), KEYS)) == [key_of(ts, KEYS) for ts in STAMPS]


def test_keys_of_with_a_single_partition_owns_everything():
    only = ["2024-01-01"]
    assert list(keys_of(pd.Series([None, STAMPS[0], STAMPS[-1]], dtype=object), only)) == only * 3
    assert list(keys_of(pd.Series([None, None], dtype=object), only)) == only * 2
