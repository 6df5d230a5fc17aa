"""Shared pieces of the engine integration tests.

A source+destination pair with schemas applied, entity runs, and an oracle
of MAPPING.md section 3 written in SQL over the source tables. The oracle
shares no code with the transforms, so a test comparing the two checks the
transforms against the contract, not against themselves.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

import pytest
import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from dbmig_pipeline.engine.errors import EngineError
from dbmig_pipeline.engine.partitions import partition_keys, partitions_for
from dbmig_pipeline.engine.pg_dates import read_out_of_range_as_ends
from dbmig_pipeline.engine.progress import ProgressEvent
from dbmig_pipeline.engine.sync import FULL, RunInfo, SyncStats, sync_entity
from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES
from dbmig_pipeline.schema import apply_legacy_schema, prepare_destination

FIRST_DAY = date(2020, 1, 1)
SPECS = {spec.name: spec for spec in ENTITIES}
#: child entity -> its parent entity (MAPPING.md: offices → doctors → patients → orders)
PARENTS = {"doctors": "offices", "patients": "doctors", "orders": "patients"}
#: What Python's str.strip() removes: every character str.isspace() accepts.
WHITESPACE = "".join(ch for ch in map(chr, range(sys.maxunicode + 1)) if ch.isspace())
FDI = sorted(10 * q + t for q, last in ((1, 8), (2, 8), (3, 8), (4, 8), (5, 5), (6, 5), (7, 5), (8, 5))
             for t in range(1, last + 1))


@dataclass
class Pair:
    """A legacy source and a prepared destination, on the session's embedded server."""

    source_url: str
    dest_url: str
    source: Engine
    dest: Engine
    keys: list[str] = field(default_factory=lambda: partition_keys(FIRST_DAY))

    def run(self, entity: str, *, mode: str = FULL, batch_size: int = 7, run_id: str = "run-1",
            keys: list[str] | None = None, on_progress: Callable[[ProgressEvent], None] | None = None,
            checkpoint_every: int = 1, writers: int = RunInfo.writers, batch_retries: int | None = None) -> SyncStats:
        """One pass of `entity` over `keys` (default: every partition)."""
        parts = partitions_for(keys or self.keys, self.keys)
        run = RunInfo(run_id, "pytest", mode=mode, batch_size=batch_size, checkpoint_every=checkpoint_every,
                      writers=writers, **({} if batch_retries is None else {"batch_retries": batch_retries}))
        return sync_entity(self.source, self.dest, SPECS[entity], SPECS, parts, self.keys, run, on_progress)

    def run_all(self, **kwargs) -> dict[str, SyncStats | EngineError]:
        """Every entity, parents first; an entity that stops does not stop the others."""
        results: dict[str, SyncStats | EngineError] = {}
        for name in ENTITY_NAMES:
            try:
                results[name] = self.run(name, **kwargs)
            except EngineError as exc:
                results[name] = exc
        return results

    def src(self, statement: str, **params) -> list[tuple]:
        return execute(self.source, statement, **params)

    def dst(self, statement: str, **params) -> list[tuple]:
        return execute(self.dest, statement, **params)


def execute(engine: Engine, statement: str, **params) -> list[tuple]:
    """Run one statement in its own transaction; rows as tuples (empty for statements without rows)."""
    with engine.begin() as conn:
        result = conn.execute(sa.text(statement), params)
        return [tuple(row) for row in result] if result.returns_rows else []


def make_pair(source_url: str, dest_url: str) -> Pair:
    source = sa.create_engine(source_url, poolclass=NullPool)
    dest = sa.create_engine(dest_url, poolclass=NullPool)
    apply_legacy_schema(source)
    prepare_destination(dest)
    return Pair(source_url, dest_url, source, dest)


@pytest.fixture(name="pair")
def pair_fixture(make_database) -> Iterator[Pair]:
    """A fresh source (legacy schema, empty) and destination (app and dbmig schemas)."""
    made = make_pair(make_database("src"), make_database("dst"))
    yield made
    made.source.dispose()
    made.dest.dispose()


# --- rows -----------------------------------------------------------------------

def insert(pair: Pair, table: str, rows: list[dict]) -> list[int]:
    """Insert source rows (jsonb values as JSON text); returns their ids in order."""
    ids = []
    with pair.source.begin() as conn:
        for row in rows:
            columns = list(row)
            values = ", ".join(f"CAST(:{c} AS jsonb)" if c in ("details", "context") else f":{c}" for c in columns)
            ids.append(conn.execute(sa.text(
                f"INSERT INTO public.{table} ({', '.join(columns)}) VALUES ({values}) RETURNING id"), row).scalar_one())
    return ids


def target_ids(pair: Pair, entity: str) -> set[int]:
    return {row[0] for row in pair.dst(f"SELECT legacy_id FROM app.{entity}")}


def open_errors(pair: Pair, entity: str | None = None) -> dict[tuple[str, int], str]:
    """(entity, legacy_id) -> category of every unresolved row error."""
    rows = pair.dst("SELECT entity, legacy_id, category FROM dbmig.row_errors WHERE resolved_at IS NULL"
                    " AND (CAST(:entity AS text) IS NULL OR entity = :entity)", entity=entity)
    found: dict[tuple[str, int], str] = {}
    for name, legacy_id, category in rows:
        assert (name, legacy_id) not in found, f"two open errors for {name} {legacy_id}"
        found[(name, legacy_id)] = category
    return found


def error_row(pair: Pair, entity: str, legacy_id: int, category: str) -> dict | None:
    columns = ("attempts", "resolved_at", "detail", "missing_parent_entity", "missing_parent_id")
    rows = pair.dst(f"SELECT {', '.join(columns)} FROM dbmig.row_errors"
                    " WHERE entity = :e AND legacy_id = :i AND category = :c", e=entity, i=legacy_id, c=category)
    return dict(zip(columns, rows[0])) if rows else None


# --- the oracle -----------------------------------------------------------------

#: Per entity: SELECT over the source giving id, quarantine category (NULL when
#: accepted), the parent's legacy id, warned target columns, then the expected
#: target columns. `t(x)` is `str.strip()` with empty → NULL.
_ORACLE = {
    "offices": """
        SELECT id, CASE WHEN t(name) IS NULL THEN 'data_quality' END AS reject, NULL::int AS parent,
               {contact_warnings} AS warned,
               created_at, updated_at AS source_updated_at,
               t(name) AS display_name,
               jsonb_strip_nulls(jsonb_build_object('line1', t(address1), 'line2', t(address2), 'city', t(city),
                   'region', t(state), 'postal_code', t(zip), 'country', t(country))) AS address,
               {phone} AS phone_e164, {email} AS email, is_active AS active
          FROM public.offices""",
    "doctors": """
        SELECT id, CASE WHEN t(first_name) IS NULL OR t(last_name) IS NULL OR t(specialty) IS NULL
                        THEN 'data_quality' END AS reject, office_id AS parent,
               {contact_warnings} AS warned,
               created_at, updated_at AS source_updated_at,
               t(first_name) AS given_name, t(last_name) AS family_name, {email} AS email, {phone} AS phone_e164,
               t(license_no) AS license_number,
               CASE upper(t(specialty)) WHEN 'ORTHO' THEN 'orthodontist' WHEN 'GP' THEN 'general_dentist'
                    WHEN 'PEDO' THEN 'pediatric_dentist' ELSE 'other' END AS specialty,
               is_active AS active
          FROM public.doctors""",
    "patients": """
        SELECT id, CASE WHEN t(first_name) IS NULL OR t(last_name) IS NULL THEN 'data_quality'
                        WHEN status NOT IN (0, 1, 2, 3, 9) THEN 'business_rule' END AS reject,
               doctor_id AS parent,
               {contact_warnings}
               || CASE WHEN birth_date <> date '1900-01-01' AND birth_date > (created_at AT TIME ZONE 'UTC')::date
                       THEN ARRAY['date_of_birth'] ELSE '{{}}' END
               AS warned,
               created_at, updated_at AS source_updated_at,
               t(first_name) AS given_name, t(last_name) AS family_name,
               CASE WHEN birth_date = date '1900-01-01' OR birth_date > (created_at AT TIME ZONE 'UTC')::date
                    THEN NULL ELSE birth_date END AS date_of_birth,
               CASE upper(t(gender)) WHEN 'M' THEN 'male' WHEN 'F' THEN 'female' ELSE 'unknown' END AS sex,
               {email} AS email, {phone} AS phone_e164, t(notes) AS notes,
               CASE status WHEN 0 THEN 'lead' WHEN 1 THEN 'active' WHEN 2 THEN 'in_treatment'
                    WHEN 3 THEN 'completed' WHEN 9 THEN 'archived' END AS status
          FROM public.patients""",
    "orders": """
        SELECT id, CASE WHEN t(order_no) IS NULL OR t(status) IS NULL OR t(currency) IS NULL THEN 'data_quality'
                        WHEN t(status) NOT IN ('draft', 'submitted', 'in_production', 'shipped', 'delivered',
                                               'cancelled') THEN 'data_quality'
                        WHEN price < 0 THEN 'business_rule'
                        WHEN aligner_count < 0 THEN 'business_rule'
                        WHEN t(details->>'arches') NOT IN ('upper', 'lower', 'both') THEN 'data_quality' END AS reject,
               patient_id AS parent, '{{}}'::text[] AS warned,
               created_at, updated_at AS source_updated_at,
               upper(t(order_no)) AS order_number, t(status) AS status, aligner_count,
               (price * 100)::bigint AS price_cents, t(currency) AS currency,
               t(details->>'arches') AS arches,
               coalesce(details->'rush' = 'true'::jsonb, false) AS is_rush,
               CASE jsonb_typeof(details) WHEN 'object' THEN details - 'arches' - 'rush'
                    WHEN 'null' THEN '{{}}'::jsonb ELSE details END AS extra,
               submitted_at, shipped_at
          FROM public.orders""",
    "jaws": """
        SELECT id, CASE WHEN t(arch) IS NULL OR t(arch) NOT IN ('U', 'L') THEN 'data_quality'
                        WHEN EXISTS (SELECT 1 FROM tokens k WHERE k.id = j.id AND NOT k.valid)
                        THEN 'data_quality' END AS reject,
               NULL::int AS parent, '{{}}'::text[] AS warned,
               created_at, updated_at AS source_updated_at,
               patient_ref AS legacy_patient_id,
               CASE t(arch) WHEN 'U' THEN 'upper' WHEN 'L' THEN 'lower' END AS arch,
               ARRAY(SELECT DISTINCT k.tok::numeric::int FROM tokens k
                      WHERE k.id = j.id AND k.valid ORDER BY 1) AS teeth,
               t(scan_url) AS scan_url
          FROM public.jaws j""",
    "system_messages": """
        SELECT id, CASE WHEN t(severity) IS NULL OR t(code) IS NULL OR t(body) IS NULL THEN 'data_quality'
                        WHEN lower(t(severity)) NOT IN ('info', 'warn', 'error') THEN 'data_quality' END AS reject,
               NULL::int AS parent, '{{}}'::text[] AS warned,
               created_at, updated_at AS source_updated_at,
               CASE lower(t(severity)) WHEN 'warn' THEN 'warning' ELSE lower(t(severity)) END AS severity,
               t(code) AS code, t(body) AS body,
               CASE WHEN context IS NULL OR jsonb_typeof(context) = 'null' THEN '{{}}'::jsonb ELSE context END
               AS context
          FROM public.system_messages""",
}
_PHONE = """CASE WHEN length(regexp_replace(t(phone), '[^0-9]', '', 'g')) = 10
                 THEN '+1' || regexp_replace(t(phone), '[^0-9]', '', 'g')
                 WHEN regexp_replace(t(phone), '[^0-9]', '', 'g') ~ '^1[0-9]{10}$'
                 THEN '+' || regexp_replace(t(phone), '[^0-9]', '', 'g') END"""
_EMAIL = """CASE WHEN length(t(email)) - length(replace(t(email), '@', '')) = 1
                 THEN lower(t(email) COLLATE pg_unicode_fast) END"""
_CONTACT_WARNINGS = (
    "(CASE WHEN t(email) IS NOT NULL AND length(t(email)) - length(replace(t(email), '@', '')) <> 1"
    " THEN ARRAY['email'] ELSE '{{}}' END"
    " || CASE WHEN t(phone) IS NOT NULL AND ({phone}) IS NULL THEN ARRAY['phone_e164'] ELSE '{{}}' END)"
)
_TOKENS = """
    CREATE TEMP VIEW tokens AS
    SELECT j.id, tok,
           CASE WHEN tok ~ '^[0-9]+$' THEN tok::numeric = ANY(%(fdi)s::numeric[]) ELSE false END AS valid
      FROM public.jaws j, unnest(string_to_array(j.teeth, ',')) AS raw, LATERAL (SELECT t(raw) AS tok) x
     WHERE tok IS NOT NULL
"""


def _temp_functions(query: str) -> str:
    """Functions in pg_temp are found only when qualified."""
    return re.sub(r"\bt\(", "pg_temp.t(", query)


#: Oracle columns that are not target columns.
_ORACLE_META = ("id", "reject", "warned")


@dataclass
class Expected:
    """What MAPPING.md says one entity's target and bookkeeping must hold."""

    rows: dict[int, dict]  # accepted rows: legacy_id -> target columns, "parent" as the parent's legacy id
    rejects: dict[int, str]  # quarantined: legacy_id -> category
    warned: set[tuple[int, str]]  # (legacy_id, target column) of data-quality warnings
    loaded: set[int] = field(default_factory=set)
    parked: set[int] = field(default_factory=set)


def oracle(source: Engine) -> dict[str, Expected]:
    """The expected outcome of a full load of the whole source, per entity, parents resolved."""
    raw = source.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(sql.SQL(
                "CREATE FUNCTION pg_temp.t(v text) RETURNS text LANGUAGE sql IMMUTABLE "
                "AS $f$ SELECT nullif(btrim(v, {}), '') $f$").format(sql.Literal(WHITESPACE)))
            cur.execute(_temp_functions(_TOKENS), {"fdi": FDI})
            contacts = _CONTACT_WARNINGS.format(phone=_PHONE)
            result = {}
            for entity, template in _ORACLE.items():
                cur.execute(_temp_functions(template.format(phone=_PHONE, email=_EMAIL, contact_warnings=contacts)))
                names = [d.name for d in cur.description]
                rows, rejects, warned = {}, {}, set()
                for values in cur.fetchall():
                    record = dict(zip(names, values))
                    legacy_id = record["id"]
                    if record["reject"]:
                        rejects[legacy_id] = record["reject"]
                        continue
                    warned |= {(legacy_id, column) for column in record["warned"]}
                    rows[legacy_id] = {k: v for k, v in record.items() if k not in _ORACLE_META}
                result[entity] = Expected(rows, rejects, warned)
        raw.rollback()
    finally:
        raw.close()
    for entity in ENTITY_NAMES:  # parents first: a child loads only where its parent loaded
        expected = result[entity]
        parent = PARENTS.get(entity)
        for legacy_id, row in expected.rows.items():
            if parent is None or row["parent"] in result[parent].loaded:
                expected.loaded.add(legacy_id)
            else:
                expected.parked.add(legacy_id)
    return result


#: Per entity: the target columns compared with the oracle, parent uuids turned back into legacy ids.
_TARGET = {
    "offices": "SELECT t.*, NULL::bigint AS parent FROM app.offices t",
    "doctors": "SELECT t.*, p.legacy_id AS parent FROM app.doctors t JOIN app.offices p ON p.id = t.office_id",
    "patients": "SELECT t.*, p.legacy_id AS parent FROM app.patients t JOIN app.doctors p ON p.id = t.doctor_id",
    "orders": "SELECT t.*, p.legacy_id AS parent FROM app.orders t JOIN app.patients p ON p.id = t.patient_id",
    "jaws": "SELECT t.*, NULL::bigint AS parent FROM app.jaws t",
    "system_messages": "SELECT t.*, NULL::bigint AS parent FROM app.system_messages t",
}


def target_rows(dest: Engine, entity: str) -> dict[int, dict]:
    """legacy_id -> every column of the target row (enums as text), `parent` as the parent's legacy id.
    Dates Python cannot hold (the target keeps the source's exactly) read as the ends of its range, as
    the source's do (engine/pg_dates.py)."""
    with dest.connect() as conn:
        read_out_of_range_as_ends(conn.connection.dbapi_connection)
        result = conn.execute(sa.text(_TARGET[entity]))
        rows = [dict(r._mapping) for r in result]
    return {row["legacy_id"]: row for row in rows}


def row_differences(expected: dict[int, dict], actual: dict[int, dict]) -> list[str]:
    """Human-readable differences, column by column, for rows present on both sides."""
    problems = []
    for legacy_id in sorted(set(expected) & set(actual)):
        want, have = expected[legacy_id], actual[legacy_id]
        for column, value in want.items():
            got = have[column]
            if value != got or (value is not None and got is not None and type(value) is not type(got)):
                problems.append(f"{legacy_id}.{column}: expected {value!r}, target has {got!r}")
        if have["deleted_at"] is not None:
            problems.append(f"{legacy_id}: deleted_at is set")
    return problems


def ledger(pair: Pair, entity: str) -> dict[int, str]:
    """legacy_id -> outcome of every row_ledger row of the entity."""
    return dict(pair.dst("SELECT legacy_id, outcome FROM dbmig.row_ledger WHERE entity = :e", e=entity))


def assert_target_matches_oracle(pair: Pair, entities=ENTITY_NAMES) -> dict[str, Expected]:
    """Every target row, every mapped column, and the open row errors, exactly as MAPPING.md says."""
    expected = oracle(pair.source)
    for entity in entities:
        want = expected[entity]
        have = target_rows(pair.dest, entity)
        missing, unexpected = sorted(want.loaded - set(have)), sorted(set(have) - want.loaded)
        assert not missing and not unexpected, f"{entity}: missing {missing[:10]}, unexpected {unexpected[:10]}"
        assert row_differences(want.rows, have) == [], entity
        errors = {**{(entity, i): c for i, c in want.rejects.items()},
                  **{(entity, i): "missing_parent" for i in want.parked}}
        assert open_errors(pair, entity) == errors, entity
        warned = set(pair.dst("SELECT legacy_id, column_name FROM dbmig.row_warnings WHERE entity = :e", e=entity))
        assert warned == {w for w in want.warned if w[0] in want.loaded}, entity
    return expected
