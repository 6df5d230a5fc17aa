"""Values that pass a type check but would fail mid-run are refused at start-up, naming the variable."""
import pytest

from dbmig_pipeline.settings import ConfigError, Settings

#: variable, the smallest and the largest value accepted (README's Configuration table)
LIMITS = [
    ("DBMIG_BATCH_SIZE", 1, 1_000_000),
    ("DBMIG_CHECKPOINT_EVERY", 1, 10_000),
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
