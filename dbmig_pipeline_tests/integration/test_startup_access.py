"""Start-up checks of what each database's role may do, and of the two sides being two databases.

Real roles (CREATE ROLE … LOGIN PASSWORD) with real GRANTs on the session's
embedded server: whatever is wrong is refused with exit code 2, one message
naming the variable, no traceback, and nothing written to the target.
"""
import itertools
import os
import secrets
import socket
import time

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.grants import dest_statements, execute
from dbmig_pipeline_tests.integration.test_cli_setup import run_dbmig

_roles = itertools.count()
PASSWORD = "Rop-" + secrets.token_hex(6)


def _admin(url: str):
    conn = psycopg2.connect(make_url(url).render_as_string(hide_password=False).replace("+psycopg2", ""))
    conn.autocommit = True
    return conn


def _sql(url: str, statement, params=None) -> list[tuple]:
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _role(url: str, label: str) -> str:
    """A new login role with a password and nothing else (PUBLIC's CONNECT on databases)."""
    name = f"rop_{label}_{os.getpid()}_{next(_roles)}"
    _sql(url, sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name)), (PASSWORD,))
    return name


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=PASSWORD).render_as_string(hide_password=False)


def _schemas(url: str) -> list[str]:
    return [r[0] for r in _sql(url, "SELECT nspname FROM pg_namespace WHERE nspname IN ('app', 'dbmig') ORDER BY 1")]


def _refused(result, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert result.stderr.startswith("dbmig: error: ")
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert ": ok" not in result.stdout
    return result.stderr


@pytest.fixture
def legacy(make_database) -> str:
    url = make_database("legacy")
    seed_legacy(url, scale=0.0005)
    return url


def test_a_source_role_that_cannot_read_the_legacy_tables_is_refused_and_nothing_is_written(
        tmp_path, make_database, legacy):
    role = _role(legacy, "nopriv")
    target = make_database("target")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": _as(legacy, role), "DBMIG_DEST_URL": target,
           "DAGSTER_PG_URL": make_database("dagster"), "DBMIG_CONNECT_RETRIES": "0"}
    for command in (("migrate", "--entity", "offices"), ("config",)):
        message = _refused(run_dbmig(*command, env=env, timeout=300), "DBMIG_SOURCE_URL", f"role '{role}'",
                           "lacks SELECT on public.offices, public.doctors, public.patients, public.orders, "
                           "public.jaws, public.system_messages", "`dbmig grants`")
        assert 'GRANT SELECT ON TABLE "public"."offices", ' in message and f'TO "{role}"' in message
    assert _schemas(target) == []  # no app, no dbmig, so no snapshots and no audit rows either


def test_a_source_role_is_told_exactly_what_it_lacks_and_passes_once_granted(tmp_path, make_database, legacy):
    role = _role(legacy, "partial")
    ident = sql.Identifier(role)
    _sql(legacy, sql.SQL("GRANT SELECT ON public.offices, public.doctors, public.patients, public.orders, "
                         "public.system_messages TO {}").format(ident))
    _sql(legacy, "REVOKE USAGE ON SCHEMA public FROM PUBLIC")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": _as(legacy, role),
           "DBMIG_DEST_URL": make_database("target"), "DAGSTER_PG_URL": make_database("dagster")}
    message = _refused(run_dbmig("config", env=env), "DBMIG_SOURCE_URL",
                       "it lacks USAGE on schema public; SELECT on public.jaws.")
    assert f'GRANT USAGE ON SCHEMA "public" TO "{role}"; GRANT SELECT ON TABLE "public"."jaws" TO "{role}";' in message
    _sql(legacy, sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
    # SELECT on exactly the columns the mapping reads is enough
    from dbmig_pipeline.entities import get_entity
    columns = sql.SQL(", ").join(map(sql.Identifier, get_entity("jaws").source_columns))
    _sql(legacy, sql.SQL("GRANT SELECT ({}) ON public.jaws TO {}").format(columns, ident))
    ok = run_dbmig("config", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "each role may do what dbmig needs: ok" in ok.stdout


def test_a_legacy_table_that_is_missing_altogether_stays_schema_drift_for_the_run_to_halt(
        tmp_path, make_database, legacy):
    """Not a configuration error: the run's pre-flight halts the entity on it (engine/preflight.py)."""
    role = _role(legacy, "reader")
    _sql(legacy, sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    _sql(legacy, "DROP TABLE public.system_messages")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": _as(legacy, role),
           "DBMIG_DEST_URL": make_database("target"), "DAGSTER_PG_URL": make_database("dagster")}
    result = run_dbmig("config", env=env)
    assert result.returncode == 0, result.stderr


def test_a_destination_role_with_connect_only_is_refused_by_migrate_config_and_init(tmp_path, make_database, legacy):
    target = make_database("target")
    role = _role(target, "connect")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": legacy, "DBMIG_DEST_URL": _as(target, role),
           "DAGSTER_PG_URL": make_database("dagster")}
    for command in (("migrate",), ("config",), ("init",)):
        _refused(run_dbmig(*command, env=env, timeout=300), "DBMIG_DEST_URL", f"role '{role}'",
                 "CREATE on database", "(to create the target schema app and the control schema dbmig",
                 "`dbmig init` as the admin")
    assert _schemas(target) == []


def test_a_destination_role_on_existing_schemas_needs_the_writers_grants_and_no_more(tmp_path, make_database, legacy):
    target = make_database("target")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": legacy, "DBMIG_DEST_URL": target,
           "DAGSTER_PG_URL": make_database("dagster")}
    assert run_dbmig("init", env=env).returncode == 0  # the admin creates and owns app and dbmig
    role = _role(target, "writer")
    database = make_url(target).database
    _sql(target, sql.SQL("GRANT USAGE ON SCHEMA app, dbmig TO {}").format(sql.Identifier(role)))
    _sql(target, sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    writer = {**env, "DBMIG_DEST_URL": _as(target, role)}
    message = _refused(run_dbmig("migrate", env=writer, timeout=300), "DBMIG_DEST_URL",
                       "SELECT, INSERT, UPDATE on app.offices", "SELECT, INSERT, UPDATE, DELETE on dbmig.row_ledger",
                       "SELECT, INSERT on dbmig.audit_log", "TEMPORARY on database")
    assert "CREATE on database" not in message  # the schemas exist: the writer need not create them
    # exactly what `dbmig grants` gives the writer is enough
    conn = _admin(target)
    try:
        with conn.cursor() as cur:
            execute(cur, dest_statements(role, database))
    finally:
        conn.close()
    ok = run_dbmig("config", env=writer)
    assert ok.returncode == 0, ok.stderr


def test_a_privilege_refused_later_is_a_user_error_naming_the_variable(tmp_path, make_database, legacy):
    """The start-up checks cannot foresee everything (here EXECUTE on the prune function, which
    `dbmig grants` gives): the refusal is still one message and exit code 2, never a traceback."""
    target = make_database("target")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": legacy, "DBMIG_DEST_URL": target,
           "DAGSTER_PG_URL": make_database("dagster")}
    assert run_dbmig("init", env=env).returncode == 0
    role = _role(target, "noprune")
    conn = _admin(target)
    try:
        with conn.cursor() as cur:
            execute(cur, [s for s in dest_statements(role, make_url(target).database)
                          if "prune_audit_detail" not in s.query.as_string(conn)])
    finally:
        conn.close()
    _refused(run_dbmig("prune", "--older-than", "90d", env={**env, "DBMIG_DEST_URL": _as(target, role)}),
             f"role '{role}' of DBMIG_DEST_URL was refused: permission denied for function prune_audit_detail")


# --- Dagster's storage ----------------------------------------------------------------------------------------

def test_dagster_storage_that_does_not_exist_is_reported_at_once_naming_the_variable(tmp_path, make_database, legacy):
    target = make_database("target")
    dagster = make_url(make_database("dagster")).set(database="no_such_dagster_db", password=PASSWORD)
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": legacy, "DBMIG_DEST_URL": target,
           "DAGSTER_PG_URL": dagster.render_as_string(hide_password=False)}
    for command in (("migrate", "--entity", "offices"), ("config",)):
        _refused(run_dbmig(*command, env=env, timeout=300), "cannot connect to DAGSTER_PG_URL at ",
                 ":***@/no_such_dagster_db", 'database "no_such_dagster_db" does not exist', "after 1 attempt:")
    assert _schemas(target) == []


def test_a_dagster_role_that_cannot_create_its_tables_is_refused_before_the_target_is_touched(
        tmp_path, make_database, legacy):
    target, dagster = make_database("target"), make_database("dagster")
    role = _role(dagster, "dagster")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": legacy, "DBMIG_DEST_URL": target,
           "DAGSTER_PG_URL": _as(dagster, role)}
    for command in (("migrate", "--entity", "offices"), ("config",)):
        _refused(run_dbmig(*command, env=env, timeout=300), "DAGSTER_PG_URL", f"role '{role}'",
                 "lacks CREATE on schema public (to create Dagster's tables")
    assert _schemas(target) == []
    # with Dagster's tables made by their owner (a run as the superuser) the role needs their rights
    env_owner = {**env, "DAGSTER_PG_URL": dagster}
    assert run_dbmig("config", env=env_owner).returncode == 0
    run_dbmig("migrate", "--entity", "offices", env=env_owner, timeout=300)
    _refused(run_dbmig("config", env=env), "DAGSTER_PG_URL", "SELECT, INSERT, UPDATE, DELETE on public.runs")
    _sql(dagster, sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {0}; "
                          "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {0}").format(sql.Identifier(role)))
    ok = run_dbmig("config", env=env)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("never_accepts", [False, True], ids=["accepts-never-answers", "backlog-full"])
def test_a_silent_dagster_storage_fails_within_a_minute_by_default(tmp_path, make_database, legacy, never_accepts):
    """A host that takes the TCP connection and never answers, or whose listen backlog is full."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    if never_accepts:  # fill the backlog: later connections get no answer at all
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
    target = make_database("target")
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": legacy, "DBMIG_DEST_URL": target,
           "DAGSTER_PG_URL": f"postgresql://dagster:{PASSWORD}@127.0.0.1:{port}/dagster"}
    if never_accepts:  # one of the two with the defaults (10 s, 3 retries); the other quicker
        env.update(DBMIG_CONNECT_TIMEOUT="2", DBMIG_CONNECT_RETRIES="1")
    try:
        started = time.monotonic()
        result = run_dbmig("migrate", "--entity", "offices", env=env, timeout=130)
        elapsed = time.monotonic() - started
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert elapsed < 60
    _refused(result, "cannot connect to DAGSTER_PG_URL at postgresql", f"://dagster:***@127.0.0.1:{port}/dagster",
             "timeout expired")
    assert _schemas(target) == []


# --- two databases ------------------------------------------------------------------------------------------

def test_source_and_destination_in_the_same_database_are_refused_whatever_the_spelling(
        tmp_path, make_database, legacy, pg_server):
    spelled_otherwise = make_url(legacy).set(query={"host": f"{pg_server.socket_dir}/", "port": str(pg_server.port)})
    for dest in (legacy, spelled_otherwise.render_as_string(hide_password=False)):
        env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": legacy, "DBMIG_DEST_URL": dest,
               "DAGSTER_PG_URL": make_database("dagster")}
        for command in (("init",), ("migrate", "--entity", "offices")):
            _refused(run_dbmig(*command, env=env, timeout=300),
                     "DBMIG_SOURCE_URL and DBMIG_DEST_URL reach the same database",
                     "Point DBMIG_DEST_URL at the new system's database")
        assert _schemas(legacy) == []
