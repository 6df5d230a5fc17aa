"""Least privilege and secrets, end to end over TLS with password logins.

`dbmig grants --apply` creates a reader and a writer on fresh databases;
`dbmig migrate` then runs under those roles alone. Afterwards the writer
cannot change the audit log, the reader's sessions cannot write, and no
password (of the reader, the writer, Dagster's storage role, or a wrong
one tried) is anywhere: not in what the processes printed, not in Dagster's
run and event storage, not in the control schema, not in DBMIG_HOME.
"""
import json
import secrets
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
import sqlalchemy as sa
from psycopg2 import sql

from dbmig_pipeline.db import create_db_engine
from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine.extract import safe_horizon
from dbmig_pipeline.engine.pass_lock import entity_pass_lock
from dbmig_pipeline.settings import Settings
from dbmig_pipeline_tests.integration.security.conftest import create_database
from dbmig_pipeline_tests.integration.security.cli_runner import invoke_cli, run_cli

READER, WRITER, DAGSTER = "dbmig-reader", "dbmig-writer", "dagster-owner"
#: one unique token per password: found in any encoding of it (raw, URL-quoted, JSON-escaped)
TOKENS = {name: secrets.token_hex(10) for name in (READER, WRITER, DAGSTER, "wrong")}
PASSWORDS = {name: f"P{token}-';\"@:/%?" for name, token in TOKENS.items()}


def _env(cluster, ca, home, databases, dest_password):
    tls = f"?sslmode=verify-full&sslrootcert={ca}"
    return {
        "DBMIG_HOME": str(home),
        "DBMIG_SOURCE_URL": cluster.tcp_url(READER, PASSWORDS[READER], databases["legacy"]),
        "DBMIG_DEST_URL": cluster.tcp_url(WRITER, dest_password, databases["target"]),
        "DAGSTER_PG_URL": cluster.tcp_url(DAGSTER, PASSWORDS[DAGSTER], databases["dagster"]) + tls,
        "DBMIG_SSLMODE": "verify-full",
        "DBMIG_SOURCE_SSLROOTCERT": str(ca),
        "DBMIG_DEST_SSLROOTCERT": str(ca),
        "DBMIG_BATCH_SIZE": "97",
        "DBMIG_CONNECT_RETRIES": "0",
    }


@pytest.fixture(scope="module")
def deployment(tls_cluster, test_ca, tmp_path_factory):
    """Grants, a migration, grants again, a run that fails inside Dagster, a wrong password: all outputs."""
    cluster = tls_cluster
    cluster.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(DAGSTER)), (PASSWORDS[DAGSTER],))
    databases = {"legacy": create_database(cluster, "legacy"), "target": create_database(cluster, "target"),
                 "dagster": create_database(cluster, "dagster", owner=DAGSTER)}
    seed_legacy(cluster.admin_url(databases["legacy"]), scale=0.0005)
    home = tmp_path_factory.mktemp("dbmig_home")
    env = _env(cluster, test_ca.ca_pem, home, databases, PASSWORDS[WRITER])
    admin = {**env, "DBMIG_ADMIN_URL": cluster.admin_url()}
    runs = {"grants": invoke_cli("grants", "--apply", env=admin)}
    runs["migrate"] = run_cli("migrate", "--json", env=env, timeout=300)
    runs["grants_again"] = invoke_cli("grants", "--apply", env=admin)
    cluster.execute(sql.SQL("REVOKE SELECT ON public.jaws FROM {}").format(sql.Identifier(READER)),
                    database=databases["legacy"])
    runs["unreadable"] = run_cli("migrate", "--entity", "jaws", env=env, timeout=300)  # refused at start-up
    cluster.execute(sql.SQL("GRANT SELECT ON public.jaws TO {}").format(sql.Identifier(READER)),
                    database=databases["legacy"])
    admin_target = sa.create_engine(cluster.admin_url(databases["target"]))
    try:
        with entity_pass_lock(admin_target, "jaws"):  # another pass of jaws: the run's step fails inside Dagster
            runs["failing"] = run_cli("migrate", "--entity", "jaws", env=env, timeout=300)
    finally:
        admin_target.dispose()
    runs["wrong_password"] = invoke_cli("migrate", env=_env(cluster, test_ca.ca_pem, home, databases,
                                                           PASSWORDS["wrong"]))
    yield {"cluster": cluster, "env": env, "home": Path(home), "databases": databases, "runs": runs}
    for name in databases.values():
        cluster.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    for role in (READER, WRITER, DAGSTER):
        cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _connect(deployment, role: str, database: str):
    cluster = deployment["cluster"]
    return psycopg2.connect(host="localhost", port=cluster.port, user=role, password=PASSWORDS[role],
                            dbname=deployment["databases"][database], sslmode="verify-full",
                            sslrootcert=deployment["env"]["DBMIG_DEST_SSLROOTCERT"])


def _refused(conn, statement: str, error=psycopg2.errors.InsufficientPrivilege) -> str:
    with conn.cursor() as cur, pytest.raises(error) as info:
        cur.execute(statement)
    conn.rollback()
    return str(info.value)


def test_a_full_migration_runs_under_the_least_privileged_roles(deployment):
    runs, cluster, dbs = deployment["runs"], deployment["cluster"], deployment["databases"]
    assert runs["grants"].returncode == 0, runs["grants"].stderr
    assert 'GRANT SELECT ON TABLE "public"."offices"' in runs["grants"].stdout
    assert f'CREATE ROLE "{WRITER}"' in runs["grants"].stdout and "PASSWORD '***'" in runs["grants"].stdout
    assert runs["migrate"].returncode == 0, runs["migrate"].stderr
    outcome = {e["entity"]: e for e in json.loads(runs["migrate"].stdout)["entities"]}
    assert all(e["ok"] for e in outcome.values()), outcome
    written = cluster.execute("SELECT count(*) FROM app.patients", database=dbs["target"])[0][0]
    assert written == outcome["patients"]["metadata"]["rows_written"] > 0
    # The admin owns what dbmig created; the roles are plain, their passwords stored as SCRAM verifiers only.
    owners = cluster.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN ('app', 'dbmig')",
                             database=dbs["target"])
    assert owners == [("postgres",)]
    roles = dict(cluster.execute(
        "SELECT rolname, rolpassword LIKE 'SCRAM-SHA-256$%%' AND NOT (rolsuper OR rolcreaterole OR rolcreatedb) "
        "FROM pg_authid WHERE rolname IN (%s, %s)", (READER, WRITER)))
    assert roles == {READER: True, WRITER: True}
    # Applying again (after an upgrade, say) changes the existing roles instead of failing.
    assert runs["grants_again"].returncode == 0, runs["grants_again"].stderr
    assert f'ALTER ROLE "{WRITER}"' in runs["grants_again"].stdout


def test_the_writer_appends_to_the_audit_log_but_can_never_change_it(deployment):
    conn = _connect(deployment, WRITER, "target")
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO dbmig.audit_log (operation) VALUES ('writer_can_append')")
        conn.rollback()
        for statement in ("UPDATE dbmig.audit_log SET operation = 'forged'",
                          "DELETE FROM dbmig.audit_log",
                          "TRUNCATE dbmig.audit_log",
                          "ALTER TABLE dbmig.audit_log DISABLE TRIGGER audit_log_append_only",
                          "DROP TRIGGER audit_log_append_only ON dbmig.audit_log",
                          "CREATE TABLE dbmig.intruder (id int)"):
            _refused(conn, statement)
        with conn.cursor() as cur:  # the trigger's escape hatch is a setting anyone may set: not enough
            cur.execute("SET dbmig.pruning = 'on'")
        _refused(conn, "DELETE FROM dbmig.audit_log WHERE level = 'detail'")
        with conn.cursor() as cur:
            cur.execute("SELECT level, count(*) FROM dbmig.audit_log GROUP BY level")
            before = dict(cur.fetchall())
            assert before["detail"] > 0 and before["summary"] > 0
            cur.execute("SELECT dbmig.prune_audit_detail(interval '0 seconds')")
            assert cur.fetchone()[0] == before["detail"]
            cur.execute("SELECT level, count(*) FROM dbmig.audit_log GROUP BY level")
            assert dict(cur.fetchall()) == {"summary": before["summary"]}
        conn.rollback()  # leave the audit log whole for the secrets search
    finally:
        conn.close()


def test_the_reader_reads_only_the_legacy_tables_and_its_sessions_cannot_write(deployment):
    cluster, dbs, env = deployment["cluster"], deployment["databases"], deployment["env"]
    legacy = dbs["legacy"]
    reader = sql.Identifier(READER)
    cluster.execute("CREATE TABLE public.not_for_dbmig (secret text)", database=legacy)
    conn = _connect(deployment, READER, "legacy")
    try:
        _refused(conn, "SELECT * FROM public.not_for_dbmig")
        _refused(conn, "INSERT INTO public.offices (name) VALUES ('x')", psycopg2.errors.ReadOnlySqlTransaction)
        # pg_read_all_stats: the reader sees when another role's open transaction began.
        other = psycopg2.connect(host=str(cluster.pgdata), port=cluster.port, user="postgres", dbname=legacy)
        try:
            with other.cursor() as ocur, conn.cursor() as cur:
                ocur.execute("SELECT xact_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
                started = ocur.fetchone()[0]
                assert safe_horizon(cur) == started
        finally:
            other.close()
    finally:
        conn.close()
    # Even a role that may write, with no read-only default, gets a read-only session from dbmig.
    cluster.execute(sql.SQL("GRANT INSERT ON public.offices TO {}").format(reader), database=legacy)
    cluster.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET default_transaction_read_only")
                    .format(reader, sql.Identifier(legacy)))
    settings = Settings.from_env(env)
    engine = create_db_engine(settings.source.url, settings.source, settings, read_only=True, purpose="source")
    try:
        with engine.connect() as product, pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            product.execute(sa.text("INSERT INTO public.offices (created_at, updated_at, name, is_active) "
                                    "VALUES (now(), now(), 'x', true)"))
    finally:
        engine.dispose()
        cluster.execute(sql.SQL("REVOKE INSERT ON public.offices FROM {}").format(reader), database=legacy)
        cluster.execute("DROP TABLE public.not_for_dbmig", database=legacy)


def _databases_holding(cluster, database: str, schemas: tuple[str, ...], token: str) -> list[str]:
    """Every table of `schemas` in `database` with a row whose text contains `token`."""
    tables = cluster.execute("SELECT table_schema, table_name FROM information_schema.tables "
                             "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE'", (list(schemas),),
                             database=database)
    assert tables, f"no tables in {schemas} of {database}"
    found = []
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM {} AS t WHERE strpos(t::text, %s) > 0").format(
            sql.Identifier(schema, table))
        if cluster.execute(query, (token,), database=database)[0][0]:
            found.append(f"{database}.{schema}.{table}")
    return found


def test_no_password_is_anywhere(deployment):
    runs, cluster, dbs, home = deployment["runs"], deployment["cluster"], deployment["databases"], deployment["home"]
    # The failures are there to be searched: one inside a Dagster run, one at start-up.
    assert runs["failing"].returncode == 1 and "jaws" in runs["failing"].stdout and "FAILED" in runs["failing"].stdout
    assert runs["wrong_password"].returncode == 2
    assert f"{WRITER}:***@localhost" in runs["wrong_password"].stderr
    assert "password authentication failed" in runs["wrong_password"].stderr
    printed = "".join(r.stdout + r.stderr for r in runs.values())
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any("dagster.yaml" == p.name for p in files)
    # What is searched below really holds the runs: materialisations, the failure and its message.
    events = dict(cluster.execute("SELECT dagster_event_type, count(*) FROM event_logs GROUP BY 1",
                                  database=dbs["dagster"]))
    assert events.get("ASSET_MATERIALIZATION", 0) >= 6 and events.get("STEP_FAILURE", 0) >= 1
    assert "another pass of this entity is running" in runs["failing"].stdout
    # a reader that lost its SELECT is refused before the run, naming the variable, the table and the grant
    assert runs["unreadable"].returncode == 2 and "Traceback" not in runs["unreadable"].stderr
    assert f"DBMIG_SOURCE_URL: role '{READER}'" in runs["unreadable"].stderr
    assert "lacks SELECT on public.jaws" in runs["unreadable"].stderr
    for role, token in TOKENS.items():
        assert token not in printed, f"the password of {role} was printed"
        leaked = [str(p) for p in files if token.encode() in p.read_bytes()]
        assert not leaked, f"the password of {role} is in {leaked}"
        assert not _databases_holding(cluster, dbs["dagster"], ("public",), token)
        assert not _databases_holding(cluster, dbs["target"], ("dbmig", "app"), token)
