"""Schemas: the legacy demo source, the target `app`, and the control schema `dbmig`.

Invariant: applying is idempotent. The control schema is versioned (one
file per version under sql/control/, applied in order, each in its own
transaction under an advisory lock), so a later change is an upgrade, never
an edit. The target schema belongs to the new system: it is created only
where missing and otherwise verified against the contract.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_CONTROL_LOCK_KEY = 0x64626D6967  # "dbmig": serialises concurrent upgrades
_VERSION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class SchemaMismatch(RuntimeError):
    """The existing target schema does not match the contract."""


def _sql(*parts: str) -> str:
    return resources.files("dbmig_pipeline").joinpath("sql", *parts).read_text(encoding="utf-8")


def run_script(conn: Connection, script: str) -> None:
    """Run a multi-statement SQL script verbatim (no parameter parsing, so % is literal)."""
    with conn.connection.cursor() as cursor:
        cursor.execute(script)


def apply_legacy_schema(engine: Engine) -> None:
    """Create the legacy demo tables (MAPPING.md section 1) if missing."""
    with engine.begin() as conn:
        run_script(conn, _sql("legacy_schema.sql"))


@dataclass(frozen=True)
class ControlVersion:
    version: int
    name: str
    sql: str


def control_versions() -> list[ControlVersion]:
    folder = resources.files("dbmig_pipeline").joinpath("sql", "control")
    versions = []
    for item in folder.iterdir():
        match = _VERSION_FILE.match(item.name)
        if match:
            versions.append(ControlVersion(int(match[1]), match[2], item.read_text(encoding="utf-8")))
    return sorted(versions, key=lambda v: v.version)


def apply_control_schema(engine: Engine) -> list[int]:
    """Bring `dbmig` up to the newest version; returns the versions applied now."""
    applied = []
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CONTROL_LOCK_KEY})
        # Even with IF NOT EXISTS, CREATE needs the privilege: a least-privileged writer
        # (`dbmig grants`) on an up-to-date schema must issue no DDL at all.
        if conn.execute(sa.text("SELECT to_regclass('dbmig.schema_version') IS NULL")).scalar_one():
            conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS dbmig")
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS dbmig.schema_version ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        current = conn.execute(sa.text("SELECT coalesce(max(version), 0) FROM dbmig.schema_version")).scalar_one()
        for version in control_versions():
            if version.version <= current:
                continue
            run_script(conn, version.sql)
            conn.execute(
                sa.text("INSERT INTO dbmig.schema_version (version, name) VALUES (:v, :n)"),
                {"v": version.version, "n": version.name},
            )
            applied.append(version.version)
    return applied


def control_schema_version(engine: Engine) -> int:
    with engine.connect() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass('dbmig.schema_version') IS NOT NULL")).scalar_one()
        if not exists:
            return 0
        return conn.execute(sa.text("SELECT coalesce(max(version), 0) FROM dbmig.schema_version")).scalar_one()


# --- target schema -----------------------------------------------------------

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS app\.(\w+) \((.*?)\n\);", re.S)
_ENUM = re.compile(r"CREATE TYPE app\.(\w+) AS ENUM \(([^)]*)\)")


def contract_target_columns() -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> column -> (formatted type, not null), read from the contract's DDL."""
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, body in _TABLE.findall(_sql("target_schema.sql")):
        columns = {}
        for line in body.strip().splitlines():
            name, rest = line.strip().rstrip(",").split(None, 1)
            type_ = rest.split(" NOT NULL")[0].split(" PRIMARY KEY")[0].split(" REFERENCES")[0]
            type_ = type_.split(" UNIQUE")[0].split(" DEFAULT")[0].split(" CHECK")[0].strip()
            columns[name] = (_normalise_type(type_), "NOT NULL" in rest or "PRIMARY KEY" in rest)
        tables[table] = columns
    return tables


def contract_enums() -> dict[str, list[str]]:
    return {
        name: [label.strip().strip("'") for label in labels.split(",")]
        for name, labels in _ENUM.findall(_sql("target_schema.sql"))
    }


_TYPE_ALIASES = {
    "timestamptz": "timestamp with time zone",
    "int": "integer",
    "bool": "boolean",
}


def _normalise_type(type_: str) -> str:
    type_ = type_.strip().lower()
    if type_.startswith("char("):
        return "character(" + type_[5:]
    if type_.startswith("app."):
        return type_[4:]
    return _TYPE_ALIASES.get(type_, type_)


def _existing_target(conn: Connection) -> dict[str, dict[str, tuple[str, bool]]]:
    rows = conn.execute(
        sa.text(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
              FROM pg_attribute a
              JOIN pg_class c ON c.oid = a.attrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p')
               AND a.attnum > 0 AND NOT a.attisdropped
            """
        )
    ).all()
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, type_, not_null in rows:
        tables.setdefault(table, {})[column] = (_normalise_type(type_.removeprefix("app.")), not_null)
    return tables


def _existing_enums(conn: Connection) -> dict[str, list[str]]:
    rows = conn.execute(
        sa.text(
            """
            SELECT t.typname, e.enumlabel
              FROM pg_type t
              JOIN pg_namespace n ON n.oid = t.typnamespace
              JOIN pg_enum e ON e.enumtypid = t.oid
             WHERE n.nspname = 'app'
             ORDER BY t.typname, e.enumsortorder
            """
        )
    ).all()
    enums: dict[str, list[str]] = {}
    for name, label in rows:
        enums.setdefault(name, []).append(label)
    return enums


def target_differences(conn: Connection) -> list[str]:
    """Human-readable differences between the existing `app` schema and the contract."""
    problems = []
    existing = _existing_target(conn)
    for table, columns in contract_target_columns().items():
        have = existing.get(table)
        if have is None:
            problems.append(f"table app.{table} is missing")
            continue
        for column, (type_, not_null) in columns.items():
            if column not in have:
                problems.append(f"app.{table}.{column} is missing")
                continue
            have_type, have_not_null = have[column]
            if have_type != type_:
                problems.append(f"app.{table}.{column} is {have_type}, the contract says {type_}")
            if have_not_null != not_null:
                want = "NOT NULL" if not_null else "nullable"
                problems.append(f"app.{table}.{column} nullability differs: the contract says {want}")
    enums = _existing_enums(conn)
    for name, labels in contract_enums().items():
        have_labels = enums.get(name)
        if have_labels is None:
            problems.append(f"enum type app.{name} is missing")
        elif not set(labels) <= set(have_labels):
            missing = sorted(set(labels) - set(have_labels))
            problems.append(f"enum type app.{name} lacks {', '.join(missing)}")
    return problems


def ensure_target_schema(engine: Engine) -> bool:
    """Create what is missing of `app`, then verify it all; returns True if anything was created.

    Raises SchemaMismatch when an existing table differs from the contract:
    dbmig never alters the new system's tables.
    """
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CONTROL_LOCK_KEY + 1})
        before = _existing_target(conn)
        missing = set(contract_target_columns()) - set(before)
        enums_missing = set(contract_enums()) - set(_existing_enums(conn))
        if missing or enums_missing:
            run_script(conn, _sql("target_schema.sql"))
        problems = target_differences(conn)
    if problems:
        raise SchemaMismatch(
            "the target schema `app` does not match the contract (MAPPING.md section 2):\n  - "
            + "\n  - ".join(problems)
            + "\nFix the target schema (dbmig never alters the new system's tables) and run again."
        )
    return bool(missing or enums_missing)


def prepare_destination(engine: Engine) -> None:
    """Everything the destination needs before a run: `app` verified, `dbmig` current."""
    ensure_target_schema(engine)
    apply_control_schema(engine)
