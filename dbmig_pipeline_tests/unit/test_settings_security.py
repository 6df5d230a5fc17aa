"""Security settings: TLS in production, the masking key, URL sslmode, role names. No database."""
import pytest

from dbmig_pipeline.grants import validate_role_name
from dbmig_pipeline.settings import ConfigError, Settings, never_leaves_the_machine

URL = "postgresql://migrator:s3cret-pw@db.example:5432/legacy"
PROD = {"DBMIG_ENV": "production", "DBMIG_SOURCE_URL": URL, "DBMIG_DEST_URL": URL}


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca"])
def test_production_refuses_anything_weaker_than_verify_full_and_says_why(mode):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**PROD, "DBMIG_SSLMODE": mode})
    message = str(info.value)
    assert f"DBMIG_SOURCE_SSLMODE=verify-full, got {mode!r}" in message
    assert "patient data must travel encrypted" in message and "DBMIG_ALLOW_TLS_REQUIRE=true" in message


def test_production_takes_require_or_verify_ca_only_when_allowed_and_never_less():
    allowed = {**PROD, "DBMIG_ALLOW_TLS_REQUIRE": "true"}
    assert Settings.from_env({**allowed, "DBMIG_SSLMODE": "require"}).dest.sslmode == "require"
    assert Settings.from_env({**allowed, "DBMIG_SSLMODE": "verify-ca"}).source.sslmode == "verify-ca"
    with pytest.raises(ConfigError, match=r"DBMIG_DEST_SSLMODE=verify-full \(or, as DBMIG_ALLOW_TLS_REQUIRE"):
        Settings.from_env({**allowed, "DBMIG_SOURCE_SSLMODE": "verify-full", "DBMIG_DEST_SSLMODE": "prefer"})
    assert not Settings.from_env({"DBMIG_ALLOW_TLS_REQUIRE": "true"}).is_production


def test_an_sslmode_in_the_url_counts_and_a_contradiction_is_refused():
    settings = Settings.from_env({"DBMIG_DEST_URL": URL + "?sslmode=verify-full"})
    assert settings.dest.sslmode == "verify-full" and settings.source.sslmode == "prefer"
    with pytest.raises(ConfigError, match="DBMIG_DEST_URL asks for sslmode=verify-full but DBMIG_DEST_SSLMODE=prefer"):
        Settings.from_env({"DBMIG_DEST_URL": URL + "?sslmode=verify-full", "DBMIG_DEST_SSLMODE": "prefer"})
    with pytest.raises(ConfigError, match="DBMIG_SOURCE_URL has sslmode='sometimes'"):
        Settings.from_env({"DBMIG_SOURCE_URL": URL + "?sslmode=sometimes"})
    production = Settings.from_env({**PROD, "DBMIG_SOURCE_URL": URL + "?sslmode=verify-full",
                                     "DBMIG_DEST_SSLMODE": "verify-full"})
    assert production.is_production


def test_the_system_trust_store_may_be_named():
    assert Settings.from_env({"DBMIG_DEST_SSLROOTCERT": "system"}).dest.sslrootcert == "system"


def test_masking_needs_a_long_enough_key_and_never_shows_it():
    with pytest.raises(ConfigError, match="DBMIG_MASK_PII=true needs DBMIG_MASK_KEY.*is not set"):
        Settings.from_env({"DBMIG_MASK_PII": "true"})
    with pytest.raises(ConfigError, match="is shorter than that") as info:
        Settings.from_env({"DBMIG_MASK_PII": "true", "DBMIG_MASK_KEY": "short-key"})
    assert "short-key" not in str(info.value)
    secret = "k" * 15 + "-very-secret"
    settings = Settings.from_env({"DBMIG_MASK_PII": "true", "DBMIG_MASK_KEY": secret})
    assert settings.mask_key == secret.encode() and secret not in repr(settings)
    assert Settings.from_env({"DBMIG_MASK_KEY": secret}).mask_key is None  # read only when masking is on


def test_masking_is_refused_on_production_before_the_key_is_asked_for():
    with pytest.raises(ConfigError, match="refused with DBMIG_ENV=production"):
        Settings.from_env({**PROD, "DBMIG_SSLMODE": "verify-full", "DBMIG_MASK_PII": "true"})


@pytest.mark.parametrize("name", ["dbmig_reader", "dbmig-writer", "_x", "Reader2", "a" * 63])
def test_plain_role_names_are_accepted(name):
    assert validate_role_name(name, "--dest-role") == name


@pytest.mark.parametrize("name", ['"; DROP TABLE x; --', "x; DROP TABLE x", "reader'", 'a"b', "two words", "",
                                  "1abc", "-abc", "a" * 64, "r\u00e9ader", "pg_monitor", "PUBLIC", "current_user"])
def test_hostile_or_reserved_role_names_are_refused_naming_the_option(name):
    with pytest.raises(ConfigError, match="--dest-role / DBMIG_DEST_ROLE"):
        validate_role_name(name, "--dest-role / DBMIG_DEST_ROLE")


DAGSTER = "postgresql://dagster:runs-pw@db.example:5432/dagster"
PROD_TLS = {**PROD, "DBMIG_SSLMODE": "verify-full"}


@pytest.mark.parametrize("url", [DAGSTER, DAGSTER + "?sslmode=require", DAGSTER + "?sslmode=prefer"])
def test_production_refuses_a_dagster_storage_reached_without_verified_tls(url):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**PROD_TLS, "DAGSTER_PG_URL": url})
    message = str(info.value)
    assert "DAGSTER_PG_URL with ?sslmode=verify-full&sslrootcert=" in message
    assert "got 'require'" in message if "require" in url else "got 'prefer'" in message  # libpq's default
    assert "runs-pw" not in message and "DBMIG_ALLOW_TLS_REQUIRE=true" in message


def test_production_takes_a_dagster_storage_that_verifies_its_server_or_never_leaves_the_machine():
    for url in (DAGSTER + "?sslmode=verify-full&sslrootcert=/etc/ca.pem",
                "postgresql://dagster@/dagster?host=/var/run/postgresql"):
        assert Settings.from_env({**PROD_TLS, "DAGSTER_PG_URL": url}).is_production
    assert Settings.from_env({**PROD_TLS, "DAGSTER_PG_URL": DAGSTER, "PGSSLMODE": "verify-full"}).is_production
    allowed = {**PROD_TLS, "DBMIG_ALLOW_TLS_REQUIRE": "true"}
    assert Settings.from_env({**allowed, "DAGSTER_PG_URL": DAGSTER + "?sslmode=require"}).is_production
    with pytest.raises(ConfigError, match=r"DAGSTER_PG_URL .* \(or, as DBMIG_ALLOW_TLS_REQUIRE=true"):
        Settings.from_env({**allowed, "DAGSTER_PG_URL": DAGSTER + "?sslmode=allow"})
    assert Settings.from_env({"DAGSTER_PG_URL": DAGSTER}).dagster_pg_url  # outside production: libpq's defaults


@pytest.mark.parametrize(("url", "env", "local"), [
    ("postgresql://u@/db?host=/var/run/postgresql", {}, True),
    ("postgresql://u@/db?host=@abstract", {}, True),
    ("postgresql://u@/db", {}, True),  # libpq's default socket
    ("postgresql://u@/db?host=/var/run/postgresql,db.example", {}, False),  # a list: any host over the network
    ("postgresql://u@/db?host=/tmp&host=db.example", {}, False),
    ("postgresql://u@/db", {"PGHOST": "db.example"}, False),
    ("postgresql://u@/db", {"PGHOST": "/tmp"}, True),
    ("postgresql://u@/db?host=/tmp&hostaddr=10.0.0.5", {}, False),
    ("postgresql://u@/db?host=/tmp", {"PGHOSTADDR": "10.0.0.5"}, False),
    ("postgresql://u@/db?service=runs", {}, False),  # the service file may name any host
    ("postgresql://u@/db", {"PGSERVICE": "runs"}, False),
    ("postgresql://u@db.example:5432/db", {}, False),
])
def test_a_url_counts_as_local_only_if_every_host_libpq_may_try_is_a_socket(url, env, local):
    assert never_leaves_the_machine(url, env) is local


def test_production_finds_a_dagster_storage_over_the_network_however_its_host_is_given():
    for url, env in (("postgresql://dagster:runs-pw@/dagster", {"PGHOST": "db.example"}),
                     ("postgresql://dagster:runs-pw@/dagster?host=/tmp,db.example", {}),
                     ("postgresql://dagster:runs-pw@/dagster?hostaddr=10.0.0.5", {})):
        with pytest.raises(ConfigError, match="DAGSTER_PG_URL with"):
            Settings.from_env({**PROD_TLS, **env, "DAGSTER_PG_URL": url})
