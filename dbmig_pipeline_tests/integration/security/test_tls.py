"""TLS against real servers: verify-full works with the right CA and name, and every way it
can be wrong fails at start-up with a message naming the variable and hiding the password."""
import secrets

import pytest
import sqlalchemy as sa
from psycopg2 import sql

from dbmig_pipeline.db import DatabaseUnavailable, check_connection, create_db_engine
from dbmig_pipeline.settings import ConfigError, Settings

PASSWORD = "Tls-" + secrets.token_hex(8) + "-p@ss:w/rd"


@pytest.fixture(scope="module")
def login(tls_cluster):
    role = "tls_tester"
    tls_cluster.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (PASSWORD,))
    yield role
    tls_cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _connect(tmp_path, side: str, env: dict) -> bool:
    """Settings from `env`, then check_connection on `side`; returns whether the session is encrypted."""
    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_CONNECT_RETRIES": "0", **env})
    chosen = settings.source if side == "source" else settings.dest
    engine = create_db_engine(chosen.url, chosen, settings, read_only=side == "source", purpose="tls-test")
    try:
        check_connection(engine, chosen, settings)
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar_one()
    finally:
        engine.dispose()


def _failure(tmp_path, side: str, env: dict) -> str:
    with pytest.raises(DatabaseUnavailable) as info:
        _connect(tmp_path, side, env)
    message = str(info.value)
    assert PASSWORD not in message and "p%40ss" not in message
    assert ":***@" in message
    return message


def test_verify_full_with_the_right_ca_and_host_name_connects_encrypted_even_in_production(
        tmp_path, tls_cluster, login, test_ca):
    url = tls_cluster.tcp_url(login, PASSWORD, "postgres")
    env = {"DBMIG_ENV": "production", "DBMIG_SSLMODE": "verify-full", "DBMIG_SOURCE_URL": url, "DBMIG_DEST_URL": url,
           "DBMIG_SOURCE_SSLROOTCERT": str(test_ca.ca_pem), "DBMIG_DEST_SSLROOTCERT": str(test_ca.ca_pem)}
    assert _connect(tmp_path, "source", env) is True
    assert _connect(tmp_path, "dest", env) is True


def test_a_host_name_the_certificate_does_not_carry_is_refused(tmp_path, tls_cluster, login, test_ca):
    message = _failure(tmp_path, "dest", {
        "DBMIG_DEST_URL": tls_cluster.tcp_url(login, PASSWORD, "postgres", host="127.0.0.1"),
        "DBMIG_DEST_SSLMODE": "verify-full", "DBMIG_DEST_SSLROOTCERT": str(test_ca.ca_pem)})
    assert "cannot connect to DBMIG_DEST_URL" in message
    assert 'server certificate for "localhost" does not match host name "127.0.0.1"' in message
    assert "DBMIG_DEST_SSLMODE=verify-full checks that the server's certificate names the host" in message


def test_a_server_signed_by_an_unknown_ca_is_refused(tmp_path, tls_cluster, login, test_ca):
    message = _failure(tmp_path, "source", {
        "DBMIG_SOURCE_URL": tls_cluster.tcp_url(login, PASSWORD, "postgres"),
        "DBMIG_SOURCE_SSLMODE": "verify-full", "DBMIG_SOURCE_SSLROOTCERT": str(test_ca.other_ca_pem)})
    assert "cannot connect to DBMIG_SOURCE_URL" in message
    assert "certificate verify failed" in message
    assert f"not signed by the CA of DBMIG_SOURCE_SSLROOTCERT, {test_ca.other_ca_pem}" in message


def test_require_refuses_a_server_without_tls(tmp_path, plain_cluster):
    plain_cluster.execute(sql.SQL("CREATE ROLE plain_tester LOGIN PASSWORD %s"), (PASSWORD,))
    message = _failure(tmp_path, "dest", {
        "DBMIG_DEST_URL": plain_cluster.tcp_url("plain_tester", PASSWORD, "postgres"),
        "DBMIG_DEST_SSLMODE": "require"})
    assert "server does not support SSL, but SSL was required" in message
    assert "DBMIG_DEST_SSLMODE=require requires an encrypted connection and this server offers none" in message


def test_production_takes_require_only_when_explicitly_allowed(tmp_path, tls_cluster, login):
    url = tls_cluster.tcp_url(login, PASSWORD, "postgres")
    env = {"DBMIG_ENV": "production", "DBMIG_SSLMODE": "require", "DBMIG_SOURCE_URL": url, "DBMIG_DEST_URL": url}
    with pytest.raises(ConfigError, match="DBMIG_ALLOW_TLS_REQUIRE=true accepts require") as info:
        _connect(tmp_path, "dest", env)
    assert "cannot tell the real server from an impostor" in str(info.value)
    assert _connect(tmp_path, "dest", {**env, "DBMIG_ALLOW_TLS_REQUIRE": "true"}) is True


def test_an_sslmode_in_the_url_is_not_silently_weakened(tmp_path, tls_cluster, login, test_ca):
    url = tls_cluster.tcp_url(login, PASSWORD, "postgres", host="127.0.0.1") + "?sslmode=verify-full"
    message = _failure(tmp_path, "dest", {"DBMIG_DEST_URL": url, "DBMIG_DEST_SSLROOTCERT": str(test_ca.ca_pem)})
    assert "does not match host name" in message  # verify-full was applied, not the default `prefer`
