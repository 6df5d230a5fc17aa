"""The least privileges the product needs, as SQL: a reader on the source, a writer on the destination.

Invariant: every role name is validated, then quoted by the driver; every
statement comes from this module's fixed templates; a password never
travels in clear text (libpq turns it into a SCRAM verifier on the client,
as psql's \\password does, so it cannot surface in a server log) and is
never printed. Only roles of this product are touched: a name that is a
superuser, may create roles, or is the admin itself is refused.

The reader: SELECT on the six legacy tables, nothing else, plus
`pg_read_all_stats` so that it sees when other sessions' transactions
started (the cursor never passes the oldest open one; without it those
are invisible and late commits could be missed). Its sessions are read-only
twice over: dbmig opens them read-only (db.py) and the role defaults to it.

The writer: SELECT, INSERT, UPDATE on `app` (rows are soft-deleted, never
deleted), everything but TRUNCATE on `dbmig`, except the audit log, which
it may only read and append to. Old audit detail goes through
`dbmig.prune_audit_detail`, which runs with the admin's rights. The admin
owns both schemas, so the writer cannot drop the append-only trigger.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import encrypt_password

from dbmig_pipeline.entities import ENTITIES
from dbmig_pipeline.settings import ConfigError

#: PostgreSQL's 63-byte identifiers; letters, digits, `_` and `-` (the driver quotes them anyway)
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")
_RESERVED = {"public", "none", "current_user", "current_role", "session_user", "all"}
_ROLE_ATTRIBUTES = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT")
PRUNE_FUNCTION = sql.SQL("{}.{}(interval)").format(sql.Identifier("dbmig"), sql.Identifier("prune_audit_detail"))


class GrantsRefused(RuntimeError):
    """The admin connection may not do what the grants need, or a role is not ours to change."""


def validate_role_name(name: str, where: str) -> str:
    """The name, if it can only be a plain role name; a ConfigError naming `where` otherwise."""
    if not _ROLE_NAME.fullmatch(name or ""):
        raise ConfigError(
            f"{where} must be a role name of letters, digits, _ and - (at most 63, not starting with a digit "
            f"or -); got {name!r}"
        )
    if name.lower() in _RESERVED or name.lower().startswith("pg_"):
        raise ConfigError(f"{where}: {name!r} is reserved by PostgreSQL")
    return name


@dataclass(frozen=True)
class Statement:
    """One statement, its bound values (never shown), and whether they hold a secret."""

    query: sql.Composable
    params: tuple = ()
    secret: bool = False


def _role(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def existing_role(cur, role: str) -> bool:
    """Whether `role` exists; GrantsRefused if it is not ours to change."""
    cur.execute("SELECT rolsuper OR rolcreaterole OR rolname = current_user FROM pg_roles WHERE rolname = %s",
                (role,))
    found = cur.fetchone()
    if found and found[0]:
        raise GrantsRefused(f"role {role!r} is a superuser, may create roles, or is the admin itself: "
                            "dbmig grants only manages its own low-privileged roles; choose another name")
    return found is not None


def role_statement(role: str, *, exists: bool, verifier: str | None = None) -> Statement:
    """CREATE the role, or ALTER it to the same attributes; its password only when one is given."""
    verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
    statement = sql.SQL("{} {} {}").format(verb, _role(role), _ROLE_ATTRIBUTES)
    if verifier is None:
        return Statement(statement)
    return Statement(sql.SQL("{} PASSWORD %s").format(statement), (verifier,), secret=True)


def password_verifier(cur, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier libpq computes on the client: the password itself never travels."""
    return encrypt_password(password, role, cur.connection, "scram-sha-256")


def source_statements(role: str, database: str) -> list[Statement]:
    """Read-only access to the legacy tables the entity specs name, in `database`."""
    schemas = sorted({spec.source_schema for spec in ENTITIES})
    tables = sql.SQL(", ").join(sql.Identifier(spec.source_schema, spec.source_table) for spec in ENTITIES)
    r = _role(role)
    return [
        Statement(sql.SQL("GRANT pg_read_all_stats TO {}").format(r)),
        Statement(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), r)),
        Statement(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.SQL(", ").join(map(sql.Identifier, schemas)), r)),
        Statement(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(tables, r)),
        Statement(sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on").format(
            r, sql.Identifier(database))),
    ]


def dest_statements(role: str, database: str) -> list[Statement]:
    """Writing `app` and `dbmig` in `database`; the audit log append-only, pruned only by the function."""
    r = _role(role)
    app, dbmig = sql.Identifier("app"), sql.Identifier("dbmig")
    return [
        Statement(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(database), r)),
        Statement(sql.SQL("GRANT USAGE ON SCHEMA {}, {} TO {}").format(app, dbmig, r)),
        Statement(sql.SQL("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {} TO {}").format(app, r)),
        Statement(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(dbmig, r)),
        Statement(sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE {} FROM {}").format(
            sql.Identifier("dbmig", "audit_log"), r)),
        Statement(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(dbmig, r)),
        Statement(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(PRUNE_FUNCTION, r)),
    ]


def render(statements: Iterable[Statement], conn) -> list[str]:
    """The statements as text for people: identifiers quoted by the driver, secrets left out."""
    return [s.query.as_string(conn).replace("PASSWORD %s", "PASSWORD '***'") + ";" for s in statements]


def execute(cur, statements: Iterable[Statement]) -> None:
    for s in statements:
        cur.execute(s.query, s.params or None)
