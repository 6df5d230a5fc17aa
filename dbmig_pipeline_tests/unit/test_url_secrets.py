"""Passwords in URL variables never reach a message, whatever form the operator wrote them in. No database."""
import pytest
import sqlalchemy as sa

from dbmig_pipeline.db import _redact
from dbmig_pipeline.engine.alerts import redact
from dbmig_pipeline.engine.retrying import _reason
from dbmig_pipeline.settings import URL_FORM, ConfigError, Settings, mask_url, normalise_url, url_secrets
from dbmig_pipeline_tests.integration.security.cli_runner import invoke_cli

SECRET = "S3cr3t-Zebra-42"
#: Values operators really wrote, none of them a URL dbmig reads.
NOT_URLS = [
    f"host=127.0.0.1 port=55439 user=rops_reader password={SECRET} dbname=legacy",
    f"host=127.0.0.1 user=rops_reader password = '{SECRET} and more' dbname=legacy",
    f"rops_reader:{SECRET}@127.0.0.1:55439/legacy",
    f"jdbc:postgresql://127.0.0.1:55439/legacy?user=rops_reader&password={SECRET}",
    f"jdbc:postgresql://127.0.0.1:55439/legacy?sslpassword={SECRET}&user=rops_reader",
]
SETTINGS_URLS = ["DBMIG_SOURCE_URL", "DBMIG_DEST_URL", "DAGSTER_PG_URL"]


@pytest.mark.parametrize("name", SETTINGS_URLS)
@pytest.mark.parametrize("raw", NOT_URLS)
def test_a_value_that_is_no_url_is_refused_without_its_password_saying_the_form(name, raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: raw})
    message = str(info.value)
    assert message.startswith(f"{name} is not a database URL") and URL_FORM in message
    assert SECRET not in message and "Zebra" not in message and "***" in message
    assert "127.0.0.1" in message  # the rest is shown: the operator sees which value is meant


#: Where the other URLs point when one is under test: a socket that is not there, so that nothing
#: (no embedded server, no connection) could happen should the value under test get through.
NOWHERE = {name: f"postgresql://{name.lower()}@/nowhere?host=/nonexistent" for name in SETTINGS_URLS}


@pytest.mark.parametrize("name", ["DBMIG_ADMIN_URL", "DBMIG_SOURCE_ADMIN_URL", *SETTINGS_URLS])
@pytest.mark.parametrize("raw", [*NOT_URLS, "postgresql://rops_reader:S3cr3t@Zebra-42@127.0.0.1:55439/legacy"])
def test_the_command_line_refuses_them_too_exit_2_no_traceback(tmp_path, name, raw):
    result = invoke_cli("grants", env={"DBMIG_HOME": str(tmp_path), **NOWHERE, name: raw})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"dbmig: error: {name} ") and "Traceback" not in result.stderr
    assert "S3cr3t" not in result.stdout + result.stderr and "Zebra" not in result.stdout + result.stderr


@pytest.mark.parametrize("query", [f"?user=rops_reader&password={SECRET}", f"?password={SECRET}&user=rops_reader",
                                   f"?user=rops_reader&sslpassword={SECRET}&sslmode=require"])
def test_libpq_query_passwords_are_accepted_and_masked(query):
    url = f"postgresql://127.0.0.1:55439/legacy{query}"
    settings = Settings.from_env({"DBMIG_SOURCE_URL": url})
    assert SECRET in settings.source.url  # the connection needs it
    for shown in (mask_url(url), settings.source.masked_url):
        assert SECRET not in shown and "***" in shown and "user=rops_reader" in shown and "127.0.0.1:55439" in shown


def test_an_unencoded_at_sign_in_the_password_is_refused_saying_how_to_write_it():
    """libpq (psql) ends the user info at the first @ and would take `Zebra-42@127.0.0.1` for the host:
    dbmig refuses rather than guess another meaning than psql's."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DBMIG_DEST_URL": "postgresql://rops_reader:S3cr3t@Zebra-42@127.0.0.1:55439/legacy"})
    message = str(info.value)
    assert message.startswith("DBMIG_DEST_URL has more than one @") and "%40" in message
    assert "S3cr3t" not in message and "Zebra" not in message
    encoded = Settings.from_env({"DBMIG_DEST_URL": "postgresql://rops_reader:S3cr3t%40Zebra-42@127.0.0.1:55439/legacy"})
    assert encoded.dest.masked_url == "postgresql+psycopg2://rops_reader:***@127.0.0.1:55439/legacy"


def test_mask_url_hides_all_of_a_password_that_holds_an_at_sign():
    masked = mask_url("postgresql://rops_reader:S3cr3t@Zebra-42@127.0.0.1:55439/legacy")
    assert masked == "postgresql://rops_reader:***@127.0.0.1:55439/legacy"


def test_alert_text_hides_all_of_a_password_that_holds_an_at_sign():
    masked = redact("cannot connect to postgresql://reader:S3cr3t@Zebra-42@db:5432/legacy: timeout")
    assert masked == "cannot connect to postgresql://reader:***@db:5432/legacy: timeout"


@pytest.mark.parametrize("scheme", ["postgres", "postgres+psycopg2"])
def test_libpq_postgres_scheme_is_accepted_as_postgresql_on_psycopg2(scheme):
    settings = Settings.from_env({"DBMIG_SOURCE_URL": f"{scheme}://reader:{SECRET}@db.example:5432/legacy",
                                  "DAGSTER_PG_URL": f"{scheme}://dagster@db.example/dagster"})
    assert settings.source.url == f"postgresql+psycopg2://reader:{SECRET}@db.example:5432/legacy"
    assert settings.dagster_pg_url == "postgresql+psycopg2://dagster@db.example/dagster"
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg2://rops:{SECRET}@127.0.0.1/legacy",
    f"postgresql+psycopg2://127.0.0.1/legacy?user=rops&password={SECRET}",
    f"postgresql+psycopg2://rops@127.0.0.1/legacy?sslpassword={SECRET}&sslmode=require",
])
def test_every_password_a_url_holds_is_cut_from_connection_errors(url):
    """Connection and batch errors are cut free of the engine's secrets before they are shown: a password
    given as `?password=` is one too, not only the URL's user-info password."""
    engine = sa.create_engine(url)
    assert url_secrets(engine.url) == (SECRET,)
    assert SECRET not in _redact(f"could not connect: {SECRET} rejected", engine)


def test_a_password_inside_another_secret_does_not_leave_the_rest_of_it():
    engine = sa.create_engine("postgresql+psycopg2://rops:abc@127.0.0.1/legacy?sslpassword=abcdef-key")
    assert url_secrets(engine.url) == ("abcdef-key", "abc")
    assert _redact("bad key abcdef-key for abc", engine) == "bad key *** for ***"
    assert "def-key" not in _reason(ValueError("bad key abcdef-key"), ("abc", "abcdef-key"))
