"""The command line at start-up: wrong configuration fails early and clearly."""
import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url


def run_dbmig(*args, env, timeout=120):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "dbmig_pipeline", *args],
        env=full_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def test_unreachable_source_fails_fast_naming_the_variable_without_the_password(tmp_path, make_database):
    started = time.monotonic()
    result = run_dbmig(
        "config",
        env={
            "DBMIG_HOME": str(tmp_path),
            "DBMIG_SOURCE_URL": "postgresql://migrator:TopSecret99@127.0.0.1:1/legacy",
            "DBMIG_DEST_URL": make_database("dest"),
            "DAGSTER_PG_URL": make_database("dagster"),
            "DBMIG_CONNECT_RETRIES": "1",
        },
    )
    assert result.returncode == 2
    assert time.monotonic() - started < 60
    assert "DBMIG_SOURCE_URL" in result.stderr
    assert "migrator:***@127.0.0.1:1/legacy" in result.stderr
    assert "TopSecret99" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_database_that_does_not_exist_is_reported_at_once_not_retried(tmp_path, make_database):
    """No retry can create a database, a role or a certificate: such failures are not retried."""
    dest = make_database("dest")
    missing = make_url(dest).set(database="no_such_database").render_as_string(hide_password=False)
    result = run_dbmig("config", env={
        "DBMIG_HOME": str(tmp_path),
        "DBMIG_SOURCE_URL": missing,
        "DBMIG_DEST_URL": dest,
        "DAGSTER_PG_URL": make_database("dagster"),
        "DBMIG_CONNECT_RETRIES": "3",
    })
    assert result.returncode == 2
    assert "DBMIG_SOURCE_URL" in result.stderr and 'database "no_such_database" does not exist' in result.stderr
    assert "after 1 attempt:" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_fails_before_anything_starts(tmp_path):
    result = run_dbmig("init", env={"DBMIG_HOME": str(tmp_path), "DBMIG_BATCH_SIZE": "0"})
    assert result.returncode == 2
    assert "DBMIG_BATCH_SIZE must be at least 1" in result.stderr
    assert not (tmp_path / "pgdata").exists()


def test_init_twice_on_given_urls_starts_nothing_embedded(tmp_path, make_database):
    dest = make_database("dest")
    env = {
        "DBMIG_HOME": str(tmp_path),
        "DBMIG_SOURCE_URL": make_database("source"),
        "DBMIG_DEST_URL": dest,
        "DAGSTER_PG_URL": make_database("dagster"),
    }
    first = run_dbmig("init", env=env)
    assert first.returncode == 0, first.stderr
    assert "target schema app: created" in first.stdout
    second = run_dbmig("init", env=env)
    assert second.returncode == 0, second.stderr
    assert "present and matches the contract" in second.stdout
    assert not (tmp_path / "pgdata").exists()
    engine = sa.create_engine(dest)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM dbmig.schema_version")).scalar_one() >= 1
    engine.dispose()


def test_source_session_is_read_only(tmp_path, make_database):
    from dbmig_pipeline.db import open_databases
    from dbmig_pipeline.settings import Settings

    settings = Settings.from_env(
        {
            "DBMIG_HOME": str(tmp_path),
            "DBMIG_SOURCE_URL": make_database("source"),
            "DBMIG_DEST_URL": make_database("dest"),
            "DAGSTER_PG_URL": make_database("dagster"),
        }
    )
    databases = open_databases(settings)
    try:
        with databases.source.connect() as conn:
            try:
                conn.execute(sa.text("CREATE TABLE should_fail (x int)"))
                raise AssertionError("the source connection accepted a write")
            except sa.exc.DBAPIError as exc:
                assert "read-only transaction" in str(exc)
        with databases.dest.begin() as conn:
            conn.execute(sa.text("CREATE TABLE ok_here (x int)"))
    finally:
        databases.dispose()


def test_a_destination_server_too_old_is_refused_at_start_up_naming_the_variable(tmp_path, make_database):
    """PostgreSQL 13+ is needed on the destination (DEST_MIN_SERVER_VERSION); no older server is at
    hand, so the check is asked for one newer than the embedded server."""
    from dbmig_pipeline.db import DEST_MIN_SERVER_VERSION, DatabaseUnavailable, check_connection, create_db_engine
    from dbmig_pipeline.settings import Settings

    dest = make_database("dest")
    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": make_database("source"),
                                  "DBMIG_DEST_URL": dest, "DAGSTER_PG_URL": make_database("dagster")})
    engine = create_db_engine(dest, settings.dest, settings, read_only=False, purpose="dest")
    try:
        with engine.connect() as conn:
            running = conn.execute(sa.text("SELECT current_setting('server_version_num')::int")).scalar_one()
        check_connection(engine, settings.dest, settings, min_server_version=DEST_MIN_SERVER_VERSION)
        with pytest.raises(DatabaseUnavailable) as refused:
            check_connection(engine, settings.dest, settings, min_server_version=running + 10000)
        message = str(refused.value)
        assert message.startswith("DBMIG_DEST_URL at ") and f"; dbmig needs {running // 10000 + 1} or later" in message
        assert "point DBMIG_DEST_URL at a newer server" in message
    finally:
        engine.dispose()


@pytest.mark.parametrize("read_only", [True, False])
def test_sessions_are_in_utc_whatever_the_clients_pgtz(tmp_path, make_database, monkeypatch, read_only):
    """libpq sends PGTZ after the `options` that set UTC; a timestamptz's text, and so every content hash,
    followed it: a client with another PGTZ found every row changed and rewrote whole tables."""
    from dbmig_pipeline.db import create_db_engine
    from dbmig_pipeline.settings import Settings

    url = make_database("tz")
    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": url, "DBMIG_DEST_URL": url,
                                  "DAGSTER_PG_URL": url})
    monkeypatch.setenv("PGTZ", "America/St_Johns")
    engine = create_db_engine(url, settings.source, settings, read_only=read_only, purpose="tz")
    try:
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.execute("SELECT current_setting('TimeZone'), "
                            "ROW(timestamptz '2026-01-01 00:00:00+00')::text, current_setting('transaction_read_only')")
                assert cur.fetchone() == ("UTC", '("2026-01-01 00:00:00+00")', "on" if read_only else "off")
        finally:
            raw.close()
    finally:
        engine.dispose()


def test_config_masks_a_password_given_as_libpq_query_parameter(tmp_path, make_database):
    """`?password=` is libpq's too: it connects, and `dbmig config` shows every URL without it."""
    secret = "S3cr3t-Zebra-42"
    env = {"DBMIG_HOME": str(tmp_path),
           "DBMIG_SOURCE_URL": make_database("source") + f"&password={secret}",
           "DBMIG_DEST_URL": make_database("dest") + f"&sslpassword={secret}",
           "DAGSTER_PG_URL": make_database("dagster") + f"&password={secret}"}
    result = run_dbmig("config", env=env)
    assert result.returncode == 0, result.stderr
    assert "each role may do what dbmig needs: ok" in result.stdout
    assert secret not in result.stdout + result.stderr
    assert result.stdout.count("?password=***") + result.stdout.count("&password=***") == 2
    assert "sslpassword=***" in result.stdout


@pytest.mark.parametrize(("setting", "named"), [
    ({"DBMIG_BATCH_SIZE": "99999999999999999999"}, "DBMIG_BATCH_SIZE must be at most 1,000,000"),
    ({"DBMIG_PARTITION_START": "2099-01-01"}, "DBMIG_PARTITION_START must be a day from 1900-01-01"),
    ({"DBMIG_PARTITION_START": "0001-01-01"}, "DBMIG_PARTITION_START must be a day from 1900-01-01"),
    ({"DAGSTER_HOME": "/etc/passwd/dagster_home"}, "DAGSTER_HOME=/etc/passwd/dagster_home is inside /etc/passwd"),
])
def test_migrate_with_a_setting_out_of_range_writes_nothing_and_names_it(tmp_path, make_database, setting, named):
    dest = make_database("dest")
    result = run_dbmig("migrate", env={"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": make_database("source"),
                                       "DBMIG_DEST_URL": dest, "DAGSTER_PG_URL": make_database("dagster"), **setting})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"dbmig: error: {named}") and "Traceback" not in result.stderr
    engine = sa.create_engine(dest)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regnamespace('dbmig')")).scalar_one() is None
    engine.dispose()


def test_plain_dagster_after_dbmig_env_reads_the_users_bare_urls_with_psycopg2(tmp_path, make_database):
    """README's "plain Dagster": the user's own `postgresql://` DAGSTER_PG_URL made dagster-postgres look for
    psycopg 3 (ModuleNotFoundError). `dbmig env` re-exports it with the psycopg2 driver, by reference to the
    variable, so the password is not printed."""
    secret = "NotEchoed-77"

    def bare(url: str) -> str:  # the embedded server's URL as a user writes one, with a password (trust ignores it)
        return url.replace("postgresql+psycopg2://postgres@", f"postgresql://postgres:{secret}@")

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))},
           "DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": bare(make_database("source")),
           "DBMIG_DEST_URL": bare(make_database("dest")), "DAGSTER_PG_URL": bare(make_database("dagster"))}
    python = sys.executable
    script = (f'eval "$({python} -m dbmig_pipeline env)" && '
              f'{python} -c "import os, dagster; print(os.environ[\'DAGSTER_PG_URL\']); '
              f'print(type(dagster.DagsterInstance.get().run_storage).__name__)"')
    printed = subprocess.run([python, "-m", "dbmig_pipeline", "env"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert secret not in printed.stdout + printed.stderr
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    url, storage = result.stdout.split()[-2:]
    assert url == env["DAGSTER_PG_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
    assert storage == "PostgresRunStorage"
