"""Start-up over TCP with password logins: two URLs that reach one database are refused however they
are spelled, and a wrong password for Dagster's storage is named, masked, at once."""
import secrets

import pytest
from psycopg2 import sql

from dbmig_pipeline_tests.integration.security.conftest import create_database
from dbmig_pipeline_tests.integration.security.cli_runner import run_cli

PASSWORD = "Same-" + secrets.token_hex(8) + "-p@ss"
ROLE = "startup_tester"


@pytest.fixture(scope="module")
def login(tls_cluster):
    tls_cluster.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(ROLE)), (PASSWORD,))
    databases = [create_database(tls_cluster, label, owner=ROLE) for label in ("legacy", "other", "dagster")]
    yield databases
    for name in databases:
        tls_cluster.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    tls_cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def _socket_url(cluster, database: str) -> str:
    return f"postgresql://{ROLE}@/{database}?host={cluster.pgdata}&port={cluster.port}"


@pytest.mark.parametrize("spelling", ["same-url", "localhost-and-127.0.0.1", "tcp-and-unix-socket"])
def test_source_and_destination_that_reach_one_database_are_refused(tmp_path, tls_cluster, login, spelling):
    legacy, _other, dagster = login
    source = tls_cluster.tcp_url(ROLE, PASSWORD, legacy)
    dest = {"same-url": source,
            "localhost-and-127.0.0.1": tls_cluster.tcp_url(ROLE, PASSWORD, legacy, host="127.0.0.1"),
            "tcp-and-unix-socket": _socket_url(tls_cluster, legacy)}[spelling]
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": source, "DBMIG_DEST_URL": dest,
           "DAGSTER_PG_URL": tls_cluster.tcp_url(ROLE, PASSWORD, dagster), "DBMIG_CONNECT_RETRIES": "0"}
    for command in (("init",), ("migrate", "--entity", "offices")):
        result = run_cli(*command, env=env, timeout=300)
        assert result.returncode == 2, result.stderr
        assert "DBMIG_SOURCE_URL and DBMIG_DEST_URL reach the same database" in result.stderr
        assert "Traceback" not in result.stderr and PASSWORD not in result.stderr + result.stdout
    schemas = tls_cluster.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('app', 'dbmig')",
                                  database=legacy)
    assert schemas == []


def test_two_databases_of_one_server_are_two_databases(tmp_path, tls_cluster, login):
    legacy, other, dagster = login
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": tls_cluster.tcp_url(ROLE, PASSWORD, legacy),
           "DBMIG_DEST_URL": _socket_url(tls_cluster, other), "DAGSTER_PG_URL": _socket_url(tls_cluster, dagster)}
    result = run_cli("config", env=env)
    assert result.returncode == 0, result.stderr


def test_a_wrong_password_for_dagster_storage_is_named_masked_and_not_retried(tmp_path, tls_cluster, login):
    legacy, other, dagster = login
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": tls_cluster.tcp_url(ROLE, PASSWORD, legacy),
           "DBMIG_DEST_URL": _socket_url(tls_cluster, other),
           "DAGSTER_PG_URL": tls_cluster.tcp_url(ROLE, "Wrong-" + PASSWORD, dagster)}
    for command in (("config",), ("migrate", "--entity", "offices")):
        result = run_cli(*command, env=env, timeout=300)
        assert result.returncode == 2, result.stderr
        assert f"cannot connect to DAGSTER_PG_URL at postgresql://{ROLE}:***@localhost:{tls_cluster.port}/" \
            in result.stderr.replace("+psycopg2", "")
        assert "password authentication failed" in result.stderr and "after 1 attempt:" in result.stderr
        assert "Traceback" not in result.stderr and PASSWORD not in result.stderr + result.stdout
    assert tls_cluster.execute("SELECT count(*) FROM pg_namespace WHERE nspname IN ('app', 'dbmig')",
                               database=other) == [(0,)]
