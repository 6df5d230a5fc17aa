"""Values that pass a type check but would fail mid-run are refused at start-up, naming the variable."""
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from dbmig_pipeline.settings import EARLIEST_PARTITION_START, ConfigError, Settings

#: variable, the smallest and the largest value accepted (README's Configuration table)
LIMITS = [
    ("DBMIG_BATCH_SIZE", 1, 1_000_000),
    ("DBMIG_CHECKPOINT_EVERY", 1, 1_000_000_000),
    ("DBMIG_BATCH_RETRIES", 0, 20),
    ("DBMIG_POOL_RECYCLE_SECONDS", 1, 86_400),
    ("DBMIG_CONNECT_TIMEOUT", 1, 3600),
    ("DBMIG_CONNECT_RETRIES", 0, 20),
    ("DBMIG_LOOKBACK_SECONDS", 0, 2_592_000),
    ("DBMIG_DELETE_GUARD_PERCENT", 0, 100),
    ("DBMIG_DELETE_GUARD_MIN_ROWS", 0, 1_000_000_000),
    ("DBMIG_SYNC_INTERVAL_MINUTES", 1, 1440),
]
#: Pool and writers are checked against each other too: a pool large enough for any number of writers.
BIG_POOL = {"DBMIG_POOL_SIZE": "100", "DBMIG_POOL_MAX_OVERFLOW": "100"}
LIMITS_WITH_POOL = [("DBMIG_WRITERS", 1, 32), ("DBMIG_POOL_SIZE", 1, 100), ("DBMIG_POOL_MAX_OVERFLOW", 0, 100)]


@pytest.mark.parametrize(("name", "low", "high"), LIMITS + LIMITS_WITH_POOL)
def test_every_whole_number_has_a_range_and_the_message_gives_it(tmp_path, name, low, high):
    base = {"DBMIG_HOME": str(tmp_path), **BIG_POOL}
    Settings.from_env({**base, name: str(low)})
    Settings.from_env({**base, name: str(high)})
    for wrong in (high + 1, low - 1):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({**base, name: str(wrong)})
        assert str(info.value).startswith(f"{name} must be at ") and f"(from {low:,} to {high:,}), got {wrong}" in str(
            info.value)


@pytest.mark.parametrize(("name", "value"), [
    ("DBMIG_BATCH_SIZE", "99999999999999999999"),  # was a bigint overflow after rows were written
    ("DBMIG_LOOKBACK_SECONDS", "100000000000000000000"),  # was OverflowError: int too large to convert to C int
    ("DBMIG_CONNECT_TIMEOUT", "99999999999"),  # was four failed connections blamed on DBMIG_SOURCE_URL
])
def test_the_values_of_the_review_are_refused(tmp_path, name, value):
    with pytest.raises(ConfigError, match=f"^{name} must be at most"):
        Settings.from_env({"DBMIG_HOME": str(tmp_path), name: value})


def _today() -> date:
    return datetime.now(UTC).date()


@pytest.mark.parametrize("start", [
    "2099-01-01",  # no partition yet: every run found none (IndexError in plan.py)
    "0001-01-01",  # Dagster wrote the key as "1-01-01" and could not read it back
    (EARLIEST_PARTITION_START - timedelta(days=1)).isoformat(),
])
def test_a_partition_start_in_the_future_or_too_far_back_is_refused(tmp_path, start):
    with pytest.raises(ConfigError, match=f"DBMIG_PARTITION_START must be a day from 1900-01-01 to today .* got {start}"):
        Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": start})
    tomorrow = _today() + timedelta(days=1)
    with pytest.raises(ConfigError, match="DBMIG_PARTITION_START"):
        Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": tomorrow.isoformat()})


@pytest.mark.parametrize("start", [EARLIEST_PARTITION_START, _today()])
def test_the_bounds_themselves_give_dagster_partitions_that_work(tmp_path, start):
    from dbmig_pipeline.assets import daily_partitions

    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": start.isoformat()})
    keys = daily_partitions(settings).get_partition_keys()
    assert keys[0] == start.isoformat() and keys[-1] >= _today().isoformat()


def test_a_pinned_partition_start_in_the_future_names_its_file(tmp_path):
    """The clock went back since DBMIG_HOME was first used."""
    (tmp_path / "partition_start").write_text("2099-01-01\n")
    with pytest.raises(ConfigError, match="the date in .*partition_start \\(fix or delete it\\) must be a day"):
        Settings.from_env({"DBMIG_HOME": str(tmp_path)})


@pytest.mark.parametrize("name", ["DBMIG_HOME", "DAGSTER_HOME"])
def test_a_home_that_is_or_lies_under_a_file_is_refused(tmp_path, name):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    base = {"DBMIG_HOME": str(tmp_path / "home")}
    with pytest.raises(ConfigError, match=f"^{name}=.*a_file is a file; point {name} at a folder"):
        Settings.from_env({**base, name: str(a_file)})
    with pytest.raises(ConfigError, match=f"^{name}=.*is inside .*a_file, which is a file; point {name} at a folder"):
        Settings.from_env({**base, name: str(a_file / "deeper" / "home")})


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this user may not write: a locked one, or for root (who writes anywhere) one of the kernel's."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if not os.access(locked, os.W_OK):
        return locked
    if Path("/proc/sys").is_dir() and not os.access("/proc/sys", os.W_OK):
        return Path("/proc/sys")
    pytest.skip("no folder here that this user cannot write")


@pytest.mark.parametrize("name", ["DBMIG_HOME", "DAGSTER_HOME"])
def test_a_home_this_user_cannot_write_is_refused(tmp_path, name):
    read_only = _read_only_folder(tmp_path)
    base = {"DBMIG_HOME": str(tmp_path / "home")}
    with pytest.raises(ConfigError, match=f"^{name}=.* is not writable by this user; point {name} at a folder"):
        Settings.from_env({**base, name: str(read_only)})
    with pytest.raises(ConfigError, match=f"^{name}=.* would be created in {read_only}, which is not writable"):
        Settings.from_env({**base, name: str(read_only / "dagster_home")})
