"""What each database's role may do there, and that the two sides are two databases: checked at start-up.

Invariant: these checks only read the catalogs (`pg_class`, `pg_namespace`,
`pg_type` and the `has_*_privilege` functions, which every role may use), so
they need no privilege of their own and write nothing; each problem names the
variable of its database, the role, and the privilege it lacks. Names are
bound as values; the GRANT statements suggested are composed by psycopg2.

A legacy table that does not exist at all is not a problem here: that is
schema drift, which the run's pre-flight reports (engine/preflight.py). A
table that exists and cannot be read is a configuration error.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy.engine import Connection

from dbmig_pipeline.entities import ENTITIES
from dbmig_pipeline.schema import contract_enums, contract_target_columns, control_versions

#: The tables dagster-postgres keeps (its run, event log and schedule storages, and alembic's stamp);
#: a unit test holds the list to Dagster's own metadata.
DAGSTER_TABLES = (
    "alembic_version", "asset_check_executions", "asset_daemon_asset_evaluations", "asset_event_tags",
    "asset_keys", "backfill_tags", "bulk_actions", "concurrency_limits", "concurrency_slots",
    "daemon_heartbeats", "dynamic_partitions", "event_logs", "instance_info", "instigators", "job_ticks", "jobs",
    "kvs", "pending_steps", "run_tags", "runs", "secondary_indexes", "snapshots",
)
GRANTS_HINT = "`dbmig grants` prints every grant dbmig's roles need"

#: What the writer needs on the tables of each destination schema (grants.py grants exactly this).
_APP_RIGHTS = ("SELECT", "INSERT", "UPDATE")
_CONTROL_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_AUDIT_RIGHTS = ("SELECT", "INSERT")  # append-only
_DAGSTER_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Identity:
    """Which database a session is in: its server (by the postmaster's start, to the microsecond) and its oid."""

    database: str
    oid: int
    server_started: datetime

    def same_database(self, other: Identity) -> bool:
        return (self.oid, self.server_started, self.database) == (other.oid, other.server_started, other.database)


def identity(conn: Connection) -> Identity:
    name, oid, started = conn.execute(sa.text(
        "SELECT d.datname, d.oid::bigint, pg_postmaster_start_time() FROM pg_database d "
        "WHERE d.datname = current_database()")).one()
    return Identity(name, oid, started)


def _role_and_database(conn: Connection) -> tuple[str, str]:
    user, database = conn.execute(sa.text("SELECT current_user, current_database()")).one()
    return user, database


def _as_sql(conn: Connection, statement: sql.Composable) -> str:
    return statement.as_string(conn.connection.driver_connection)


def _rights_of(conn: Connection, oid: int, rights: tuple[str, ...]) -> list[str]:
    """Which of `rights` (table privileges) the current role lacks on relation `oid`."""
    return list(conn.execute(sa.text(
        "SELECT r FROM unnest(CAST(:rights AS text[])) WITH ORDINALITY AS x(r, n) "
        "WHERE NOT has_table_privilege(CAST(:oid AS oid), r) ORDER BY n"),
        {"oid": oid, "rights": list(rights)}).scalars())


# --- the source: SELECT on every legacy table the mapping reads ---------------------------------------------

def source_problems(conn: Connection, env_name: str) -> list[str]:
    user, database = _role_and_database(conn)
    no_usage: list[str] = []
    unreadable: list[tuple[str, str]] = []
    for spec in ENTITIES:
        row = conn.execute(sa.text(
            """
            SELECT has_schema_privilege(n.oid, 'USAGE'),
                   has_table_privilege(c.oid, 'SELECT') OR NOT EXISTS (
                       SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                          AND a.attname = ANY(:columns) AND NOT has_column_privilege(c.oid, a.attnum, 'SELECT'))
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = :schema AND c.relname = :table AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            """), {"schema": spec.source_schema, "table": spec.source_table,
                   "columns": list(spec.source_columns)}).one_or_none()
        if row is None:
            continue  # missing altogether: schema drift, halted by the run's pre-flight
        usage, readable = row
        if not usage and spec.source_schema not in no_usage:
            no_usage.append(spec.source_schema)
        if not readable:
            unreadable.append((spec.source_schema, spec.source_table))
    if not no_usage and not unreadable:
        return []
    role = sql.Identifier(user)
    lacks, grants = [], []
    if no_usage:
        lacks.append("USAGE on schema " + ", ".join(no_usage))
        grants.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO {};").format(
            sql.SQL(", ").join(map(sql.Identifier, no_usage)), role))
    if unreadable:
        lacks.append("SELECT on " + ", ".join(f"{s}.{t}" for s, t in unreadable))
        grants.append(sql.SQL("GRANT SELECT ON TABLE {} TO {};").format(
            sql.SQL(", ").join(sql.Identifier(s, t) for s, t in unreadable), role))
    return [f"{env_name}: role {user!r} may not read the legacy tables the mapping reads in database "
            f"{database!r}: it lacks {'; '.join(lacks)}. As their owner or a superuser: "
            f"{' '.join(_as_sql(conn, g) for g in grants)} ({GRANTS_HINT})"]


# --- the destination: create or use `app` and `dbmig` ----------------------------------------------------------

def dest_problems(conn: Connection, env_name: str) -> list[str]:
    user, database = _role_and_database(conn)
    can_create, can_temp = conn.execute(sa.text(
        "SELECT has_database_privilege(current_database(), 'CREATE'), "
        "has_database_privilege(current_database(), 'TEMPORARY')")).one()
    schemas = {name: (usage, create, owner) for name, usage, create, owner in conn.execute(sa.text(
        "SELECT nspname, has_schema_privilege(oid, 'USAGE'), has_schema_privilege(oid, 'CREATE'), "
        "pg_has_role(nspowner, 'USAGE') FROM pg_namespace WHERE nspname IN ('app', 'dbmig')"))}
    relations = {(schema, name): (oid, kind, owned) for schema, name, oid, kind, owned in conn.execute(sa.text(
        "SELECT n.nspname, c.relname, c.oid::bigint, c.relkind::text, pg_has_role(c.relowner, 'USAGE') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('app', 'dbmig') AND c.relkind IN ('r', 'p', 'S')"))}
    enums = set(conn.execute(sa.text(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = 'app' AND t.typtype = 'e'")).scalars())
    db = sql.Identifier(database)
    lacks: list[str] = []
    grants: list[sql.Composable] = []

    to_create: list[str] = []  # what needs CREATE on the database

    def need_database_create(what: str) -> None:
        if not to_create:
            lacks.append("")  # its place in the list; filled in below
            grants.append(sql.SQL("GRANT CREATE ON DATABASE {} TO {};").format(db, sql.Identifier(user)))
        to_create.append(what)

    # app: created where missing (target_schema.sql starts with CREATE SCHEMA IF NOT EXISTS), else used
    missing_tables = sorted(t for t in contract_target_columns() if ("app", t) not in relations)
    missing_enums = sorted(set(contract_enums()) - enums)
    if "app" not in schemas:
        if not can_create:
            need_database_create("the target schema app")
    else:
        usage, create, _owner = schemas["app"]
        if missing_tables or missing_enums:
            what = ", ".join([f"app.{t}" for t in missing_tables] + [f"type app.{e}" for e in missing_enums])
            if not can_create:
                need_database_create(what)
            if not create:
                lacks.append(f"CREATE on schema app (to create the missing {what})")
        if not usage:
            lacks.append("USAGE on schema app")
        for table in contract_target_columns():
            found = relations.get(("app", table))
            if found and (lacking := _rights_of(conn, found[0], _APP_RIGHTS)):
                lacks.append(f"{', '.join(lacking)} on app.{table}")
    # dbmig: installed by the first start, then used; an upgrade changes its tables (their owner's right)
    if ("dbmig", "schema_version") not in relations:
        if not can_create:
            need_database_create("the control schema dbmig")
        elif "dbmig" in schemas and not schemas["dbmig"][1]:
            lacks.append("CREATE on schema dbmig (to install the control schema)")
    else:
        usage, create, owner = schemas["dbmig"]
        if not usage:
            lacks.append("USAGE on schema dbmig")
        for (schema, name), (oid, kind, _owned) in sorted(relations.items()):
            if schema != "dbmig":
                continue
            if kind == "S":
                if not conn.execute(sa.text("SELECT has_sequence_privilege(CAST(:oid AS oid), 'USAGE')"),
                                    {"oid": oid}).scalar_one():
                    lacks.append(f"USAGE on sequence dbmig.{name}")
            elif lacking := _rights_of(conn, oid, _AUDIT_RIGHTS if name == "audit_log" else _CONTROL_RIGHTS):
                lacks.append(f"{', '.join(lacking)} on dbmig.{name}")
        if usage and not _rights_of(conn, relations[("dbmig", "schema_version")][0], ("SELECT",)):
            version = conn.execute(sa.text("SELECT coalesce(max(version), 0) FROM dbmig.schema_version")).scalar_one()
            newest = control_versions()[-1].version
            owns_all = owner and create and all(owned for (schema, _), (_, _, owned) in relations.items()
                                                if schema == "dbmig")
            if version < newest and not owns_all:
                lacks.append(f"ownership of schema dbmig and its tables (the control schema is at version {version} "
                             f"and this dbmig upgrades it to {newest}: run `dbmig init` as their owner, e.g. "
                             "with the admin's URL as DBMIG_DEST_URL, then `dbmig grants --apply` again)")
    if to_create:
        lacks[lacks.index("")] = f"CREATE on database {database!r} (to create {' and '.join(to_create)}, missing there)"
    if not can_temp:
        lacks.append(f"TEMPORARY on database {database!r} (batches are staged in temporary tables)")
        grants.append(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {};").format(db, sql.Identifier(user)))
    if not lacks:
        return []
    fix = (f" As the database's owner or a superuser: {' '.join(_as_sql(conn, g) for g in grants)}" if grants else "")
    return [f"{env_name}: role {user!r} may not do what dbmig needs in database {database!r}: it lacks "
            + "; ".join(lacks) + "." + fix + f" ({GRANTS_HINT}; `dbmig init` as the admin creates the schemas)"]


# --- Dagster's storage: create its tables, or use them ------------------------------------------------------------

def dagster_problems(conn: Connection, env_name: str) -> list[str]:
    user, database = _role_and_database(conn)
    schema, can_create = conn.execute(sa.text(
        "SELECT current_schema(), coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)")).one()
    where = f"{env_name}: role {user!r} cannot keep Dagster's run storage in database {database!r}"
    if schema is None:
        return [f"{where}: no schema it may use is on its search_path (dagster-postgres creates its tables in "
                "the first one): GRANT USAGE, CREATE on a schema of its search_path, or make the role the "
                "database's owner"]
    tables = {name: oid for name, oid in conn.execute(sa.text(
        "SELECT c.relname, c.oid::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = ANY(:names) AND c.relkind IN ('r', 'p')"),
        {"names": list(DAGSTER_TABLES)})}
    lacks = []
    missing = [t for t in DAGSTER_TABLES if t not in tables]
    if missing and not can_create:
        lacks.append(f"CREATE on schema {schema} (to create Dagster's tables {', '.join(missing[:4])}"
                     f"{', …' if len(missing) > 4 else ''}; "
                     "PostgreSQL 15 and later no longer grant it to every role)")
    for name, oid in sorted(tables.items()):
        if lacking := _rights_of(conn, oid, _DAGSTER_RIGHTS):
            lacks.append(f"{', '.join(lacking)} on {schema}.{name}")
    sequences = conn.execute(sa.text(
        "SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
        "AND d.refobjid = ANY(CAST(:oids AS oid[])) "
        # CASE: the planner may test rows before the join has kept only sequences
        "AND CASE WHEN s.relkind = 'S' THEN NOT has_sequence_privilege(s.oid, 'USAGE') END"),
        {"oids": list(tables.values())}).scalars().all()
    lacks += [f"USAGE on sequence {schema}.{name}" for name in sorted(sequences)]
    if not lacks:
        return []
    return [f"{where}: it lacks {'; '.join(lacks)}. Simplest: make it the owner of a database of its own "
            f"(CREATE DATABASE … OWNER …; {GRANTS_HINT})"]
