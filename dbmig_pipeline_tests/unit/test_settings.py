"""Settings: defaults, validation errors that name the variable, masked URLs."""
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dbmig_pipeline.settings import KNOWN_VARIABLES, ConfigError, Settings, mask_url

GOOD = "postgresql://migrator:s3cret-pw@db.example:5432/legacy"


def test_defaults_mean_embedded_under_dbmig_home(tmp_path):
    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path)})
    assert settings.source.url is None and settings.dest.url is None and settings.dagster_pg_url is None
    assert settings.home == tmp_path
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert settings.batch_size == 10_000
    assert settings.partition_start == datetime.now(UTC).date()
    assert settings.partition_start_is_default
    assert settings.source.sslmode == "prefer"


def test_default_home_is_dot_dbmig_in_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home == Path(tmp_path) / ".dbmig"


def test_urls_and_tuning_are_read():
    settings = Settings.from_env(
        {
            "DBMIG_SOURCE_URL": GOOD,
            "DBMIG_DEST_URL": "postgresql+psycopg2://w:x@target/new",
            "DBMIG_BATCH_SIZE": "500",
            "DBMIG_DEST_SSLMODE": "verify-full",
            "DBMIG_PARTITION_START": "2021-03-04",
            "DBMIG_DELETE_GUARD_MIN_ROWS": "0",
        }
    )
    assert settings.delete_guard_min_rows == 0 and Settings.from_env({}).delete_guard_min_rows == 1000
    assert settings.source.url == GOOD.replace("postgresql://", "postgresql+psycopg2://")
    assert settings.batch_size == 500
    assert settings.dest.sslmode == "verify-full"
    assert settings.source.sslmode == "prefer"
    assert settings.partition_start == date(2021, 3, 4)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DBMIG_BATCH_SIZE": "0"}, "DBMIG_BATCH_SIZE"),
        ({"DBMIG_BATCH_SIZE": "-5"}, "DBMIG_BATCH_SIZE"),
        ({"DBMIG_BATCH_SIZE": "lots"}, "DBMIG_BATCH_SIZE"),
        ({"DBMIG_POOL_SIZE": "0"}, "DBMIG_POOL_SIZE"),
        ({"DBMIG_SSLMODE": "sometimes"}, "DBMIG_SSLMODE"),
        ({"DBMIG_SOURCE_SSLMODE": "strict"}, "DBMIG_SOURCE_SSLMODE"),
        ({"DBMIG_SOURCE_URL": "mysql://u:p@h/db"}, "DBMIG_SOURCE_URL"),
        ({"DBMIG_DEST_URL": "not a url"}, "DBMIG_DEST_URL"),
        ({"DBMIG_DEST_URL": "postgresql://u:p@host"}, "DBMIG_DEST_URL"),
        ({"DAGSTER_PG_URL": "postgresql+asyncpg://u:p@h/d"}, "DAGSTER_PG_URL"),
        ({"DBMIG_PARTITION_START": "yesterday"}, "DBMIG_PARTITION_START"),
        ({"DBMIG_MASK_PII": "perhaps"}, "DBMIG_MASK_PII"),
        ({"DBMIG_ENV": "prod"}, "DBMIG_ENV"),
        ({"DBMIG_DELETE_GUARD_PERCENT": "150"}, "DBMIG_DELETE_GUARD_PERCENT"),
        ({"DBMIG_DELETE_GUARD_MIN_ROWS": "-1"}, "DBMIG_DELETE_GUARD_MIN_ROWS"),
        ({"DBMIG_SOURCE_SSLROOTCERT": "/nonexistent/ca.pem"}, "DBMIG_SOURCE_SSLROOTCERT"),
    ],
)
def test_bad_values_fail_naming_the_variable(env, names):
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)



def test_writers_need_a_pool_with_room_for_them_and_the_pass_own_connections():
    """Each writer, the pass, its read-ahead and its entity lock hold a destination connection."""
    fits = {"DBMIG_WRITERS": "3", "DBMIG_POOL_SIZE": "4", "DBMIG_POOL_MAX_OVERFLOW": "2"}
    assert Settings.from_env(fits).writers == 3
    with pytest.raises(ConfigError, match=r"DBMIG_WRITERS=3 needs 6 .*\(DBMIG_POOL_SIZE 4 \+ DBMIG_POOL_MAX_OVERFLOW 1"):
        Settings.from_env({**fits, "DBMIG_POOL_MAX_OVERFLOW": "1"})

def test_error_about_a_url_never_shows_its_password():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DBMIG_SOURCE_URL": "mysql://user:hunter2@host/db"})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DBMIG_DEST_URL": "postgresql://user:hunter2@host"})
    assert "hunter2" not in str(info.value)


def test_production_requires_verify_full_and_real_urls():
    with pytest.raises(ConfigError, match="DBMIG_SOURCE_URL"):
        Settings.from_env({"DBMIG_ENV": "production"})
    with pytest.raises(ConfigError, match="DBMIG_SOURCE_SSLMODE=verify-full"):
        Settings.from_env({"DBMIG_ENV": "production", "DBMIG_SOURCE_URL": GOOD, "DBMIG_DEST_URL": GOOD})
    ok = Settings.from_env(
        {"DBMIG_ENV": "production", "DBMIG_SOURCE_URL": GOOD, "DBMIG_DEST_URL": GOOD, "DBMIG_SSLMODE": "verify-full"}
    )
    assert ok.is_production


@pytest.mark.parametrize(
    "url",
    [
        GOOD,
        "postgresql+psycopg2://migrator:s3cret-pw@db.example/legacy?sslmode=require",
        "postgresql://migrator:s3cret-pw@/legacy?host=/tmp/sock",
        "garbage://migrator:s3cret-pw@@@",
    ],
)
def test_mask_url_hides_the_password(url):
    masked = mask_url(url)
    assert "s3cret-pw" not in masked
    assert "***" in masked


def test_mask_url_keeps_everything_else():
    assert mask_url(GOOD) == "postgresql://migrator:***@db.example:5432/legacy"
    assert mask_url(None) == "(embedded default)"


def test_default_partition_start_is_pinned_in_dbmig_home(tmp_path):
    from dbmig_pipeline.settings import record_partition_start

    (tmp_path / "partition_start").write_text("2024-02-03\n")
    assert Settings.from_env({"DBMIG_HOME": str(tmp_path)}).partition_start == date(2024, 2, 3)
    given = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_PARTITION_START": "2021-01-01"})
    assert given.partition_start == date(2021, 1, 1) and not given.partition_start_is_default
    fresh = tmp_path / "fresh"
    settings = Settings.from_env({"DBMIG_HOME": str(fresh)})
    record_partition_start(settings)
    assert (fresh / "partition_start").read_text().strip() == settings.partition_start.isoformat()


def test_unreadable_pinned_partition_start_names_the_file(tmp_path):
    (tmp_path / "partition_start").write_text("soon")
    with pytest.raises(ConfigError, match="partition_start"):
        Settings.from_env({"DBMIG_HOME": str(tmp_path)})


def test_a_misspelt_setting_is_refused_with_the_name_it_resembles():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"DBMIG_BATCHSIZE": "500", "DBMIG_DEST_PASSWORD": "s3cret-pw"})
    message = str(refused.value)
    assert "DBMIG_BATCHSIZE (did you mean DBMIG_BATCH_SIZE?)" in message
    assert "DBMIG_DEST_PASSWORD" in message and "s3cret-pw" not in message
    assert "500" not in message


def test_every_dbmig_variable_the_code_reads_is_a_known_setting_and_documented():
    """The list of known names is kept by hand: a setting added to the code but not to the list would
    be refused as a misspelling, one missing from the README would be undocumented."""
    package = Path(__file__).resolve().parents[2] / "dbmig_pipeline"
    read = set()
    for source in package.rglob("*.py"):
        read |= set(re.findall(r"\bDBMIG_[A-Z][A-Z_]*[A-Z]\b", source.read_text()))
    read |= {f"DBMIG_{side}_{what}" for side in ("SOURCE", "DEST") for what in ("URL", "SSLMODE", "SSLROOTCERT")}
    assert read - KNOWN_VARIABLES == set()
    readme = (package.parent / "README.md").read_text()
    assert {name for name in KNOWN_VARIABLES if f"`{name}`" not in readme} == set()
    assert Settings.from_env({name: "" for name in KNOWN_VARIABLES}).batch_size == 10_000
