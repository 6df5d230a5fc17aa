"""What the hardware allows: the floors dbmig is compared with. Everything runs in the harness.

Source and destination are on the same embedded server (the product's
default setup), so every limit here runs on the same server as dbmig.

(a) Raw COPY pipe: per legacy table, `COPY (SELECT <the columns the mapping
    reads> FROM public.t) TO STDOUT` on the source, piped through an os.pipe
    (64 KiB writes, unbuffered reads, a producer thread) into
    `COPY scratch.t FROM STDIN` in database `bench_plain`, where `scratch.t` is
    an UNLOGGED table with the same columns and types and no index or
    constraint (truncated before each repeat, untimed). Text format.

(b) Plain set-based load: `app` is dropped and created from
    dbmig_pipeline/sql/target_schema.sql in `bench_plain` (untimed); then per
    entity, parents first, in one transaction: a TEMP staging table with the
    source columns and types, the same COPY pipe into it, and ONE
    `INSERT INTO app.t (…) SELECT … FROM stage s JOIN app.<parent> p ON
    p.legacy_id = s.<fk> ON CONFLICT (legacy_id) DO UPDATE SET <every column> =
    EXCLUDED.<column>, synced_at = now()`: uuid keys from the table default,
    foreign keys and CHECKs on. The mapping is the simplest that satisfies the
    target's types and constraints (see PLAIN_MAPPING): raw columns renamed,
    `price * 100` cast to bigint, the office address as `jsonb_build_object`
    of the raw columns, NULL contexts as `{}`, and constants for every enum
    column whose legacy encoding differs (specialty 'other', sex 'unknown',
    patient status 'active', order status 'draft', arch 'upper', severity
    'info') and for columns derived from JSON or lists (arches NULL, is_rush
    false, teeth '{}'). Orders with a negative price or aligner count are left
    out (the target's CHECKs refuse them). No hashing, no ledger, no
    validation, no error rows, no checkpoints.

(c) Plain delta: after the changes of one repeat, per entity: the same
    staging + upsert as (b), fed by `COPY (SELECT … WHERE updated_at BETWEEN
    <just before the changes> AND <just after> ORDER BY updated_at, id)` (a
    range scan of the `(updated_at, id)` index), into the full `app` that (b)
    loaded.

(d) Range checksums: per legacy table, one aggregate pass
    `SELECT (id - lo) / width, count(*), sum(('x' || left(md5(ROW(<columns>)::text),
    16))::bit(64)::bigint) FROM public.t GROUP BY 1` over 256 id ranges:
    the source half of what `dbmig baseline` does when nothing changed.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime
from importlib import resources

from psycopg2 import sql

from benchmarks.bench import PLAIN_DB, SOURCE_DB, Bench
from dbmig_pipeline.entities import ENTITIES, get_entity
from dbmig_pipeline.entities.offices import ADDRESS_KEYS
from dbmig_pipeline.entities.spec import EntitySpec

PIPE_BUFFER = 1 << 16
#: (d): this many id ranges per table, as `dbmig baseline` starts with
CHECKSUM_SEGMENTS = 256

_ADDRESS = "jsonb_build_object(" + ", ".join(f"'{key}', s.{column}" for column, key in ADDRESS_KEYS.items()) + ")"

#: (b)/(c): target column → SQL over the staged source row `s` (and the parent row `p`).
PLAIN_MAPPING: dict[str, dict[str, str]] = {
    "offices": {"display_name": "s.name", "address": _ADDRESS, "phone_e164": "s.phone", "email": "s.email",
                "active": "s.is_active"},
    "doctors": {"office_id": "p.id", "given_name": "s.first_name", "family_name": "s.last_name", "email": "s.email",
                "phone_e164": "s.phone", "license_number": "s.license_no", "specialty": "'other'",
                "active": "s.is_active"},
    "patients": {"doctor_id": "p.id", "given_name": "s.first_name", "family_name": "s.last_name",
                 "date_of_birth": "s.birth_date", "sex": "'unknown'", "email": "s.email", "phone_e164": "s.phone",
                 "notes": "s.notes", "status": "'active'"},
    "orders": {"patient_id": "p.id", "order_number": "s.order_no", "status": "'draft'",
               "aligner_count": "s.aligner_count", "price_cents": "(s.price * 100)::bigint", "currency": "s.currency",
               "arches": "NULL", "is_rush": "false", "extra": "s.details", "submitted_at": "s.submitted_at",
               "shipped_at": "s.shipped_at"},
    "jaws": {"legacy_patient_id": "s.patient_ref", "arch": "'upper'", "teeth": "'{}'", "scan_url": "s.scan_url"},
    "system_messages": {"severity": "'info'", "code": "s.code", "body": "s.body",
                        "context": "coalesce(s.context, '{}'::jsonb)"},
}
#: rows the target's CHECK constraints refuse
PLAIN_FILTER = {"orders": "s.price >= 0 AND (s.aligner_count IS NULL OR s.aligner_count >= 0)"}


# --- plumbing ---------------------------------------------------------------

def pipe_copy(src_conn, copy_out: sql.Composable, dst_conn, copy_in: sql.Composable) -> None:
    """COPY … TO STDOUT on `src_conn` straight into COPY … FROM STDIN on `dst_conn` through an os.pipe."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []
    copy_out_text = copy_out.as_string(src_conn)

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=PIPE_BUFFER) as sink, src_conn.cursor() as cur:
                cur.copy_expert(copy_out_text, sink, size=PIPE_BUFFER)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    producer = threading.Thread(target=produce, name="copy-out", daemon=True)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as source, dst_conn.cursor() as cur:
            cur.copy_expert(copy_in.as_string(dst_conn), source, size=PIPE_BUFFER)
    finally:
        producer.join()
    if failure:
        raise failure[0]


def _columns(spec: EntitySpec) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c) for c in spec.source_columns)


def source_types(src_conn, spec: EntitySpec) -> list[tuple[str, str]]:
    """(column, SQL type) of the columns the mapping reads, as the source declares them."""
    with src_conn.cursor() as cur:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (f"{spec.source_schema}.{spec.source_table}",),
        )
        types = dict(cur.fetchall())
    return [(c, types[c]) for c in spec.source_columns]


def _column_defs(types: list[tuple[str, str]]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in types)


def _copy_out(spec: EntitySpec, where: str = "", params: dict | None = None, src_conn=None) -> sql.Composable:
    query = sql.SQL("SELECT {cols} FROM {table}").format(
        cols=_columns(spec), table=sql.Identifier(spec.source_schema, spec.source_table))
    if where:
        query = sql.SQL("{} WHERE {} ORDER BY updated_at, id").format(query, sql.SQL(where))
        # COPY takes no bind parameters: literals are rendered by the driver
        with src_conn.cursor() as cur:
            query = sql.SQL(cur.mogrify(query.as_string(src_conn), params).decode())
    return sql.SQL("COPY ({}) TO STDOUT").format(query)


class _Connections:
    def __init__(self, bench: Bench):
        self.src = bench.connect(SOURCE_DB)
        self.dst = bench.connect(PLAIN_DB)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.src.close()
        self.dst.close()


# --- (a) raw COPY pipe ------------------------------------------------------

def prepare_scratch(bench: Bench) -> None:
    """Unlogged copies (columns and types only) of the legacy tables, empty. Untimed."""
    with _Connections(bench) as c, c.dst.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS scratch")
        for spec in ENTITIES:
            table = sql.Identifier("scratch", spec.source_table)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            # autovacuum off: its work on a scratch table would land in the next measurement's server CPU
            cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({}) WITH (autovacuum_enabled = false)").format(
                table, _column_defs(source_types(c.src, spec))))


def raw_copy(bench: Bench) -> int:
    """(a): every table's mapped columns through a COPY pipe into scratch; returns rows copied."""
    rows = 0
    with _Connections(bench) as c:
        for spec in ENTITIES:
            table = sql.Identifier("scratch", spec.source_table)
            pipe_copy(c.src, _copy_out(spec), c.dst,
                      sql.SQL("COPY {} ({}) FROM STDIN").format(table, _columns(spec)))
            with c.dst.cursor() as cur:
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
                rows += cur.fetchone()[0]
    return rows


# --- (b) plain set-based load and (c) plain delta ---------------------------

def reset_plain_target(bench: Bench) -> None:
    """A fresh `app` in bench_plain, from the contract's DDL, autovacuum off (it would run into the
    next measurement; `Bench.vacuum_analyze(PLAIN_DB)` gives (c) the statistics instead). Untimed."""
    ddl = resources.files("dbmig_pipeline").joinpath("sql", "target_schema.sql").read_text(encoding="utf-8")
    conn = bench.connect(PLAIN_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS app CASCADE")
            cur.execute(ddl)
            for spec in ENTITIES:
                cur.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(
                    sql.Identifier(spec.target_schema, spec.target_table)))
    finally:
        conn.close()


def upsert_sql(spec: EntitySpec, stage: str) -> sql.Composable:
    mapping = PLAIN_MAPPING[spec.name]
    columns = ["legacy_id", "created_at", "source_updated_at", *mapping]
    exprs = ["s.id", "s.created_at", "s.updated_at", *mapping.values()]
    join = sql.SQL("")
    if spec.parents:
        parent = spec.parents[0]
        parent_spec = get_entity(parent.entity)
        join = sql.SQL("JOIN {} p ON p.legacy_id = s.{}").format(
            sql.Identifier(parent_spec.target_schema, parent_spec.target_table), sql.Identifier(parent.source_column))
    where = sql.SQL("WHERE " + PLAIN_FILTER[spec.name]) if spec.name in PLAIN_FILTER else sql.SQL("")
    updates = [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in columns[1:]]
    return sql.SQL(
        "INSERT INTO {target} AS t ({cols}) SELECT {exprs} FROM {stage} s {join} {where} "
        "ON CONFLICT (legacy_id) DO UPDATE SET {updates}, synced_at = now()"
    ).format(
        target=sql.Identifier(spec.target_schema, spec.target_table),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        exprs=sql.SQL(", ").join(sql.SQL(e) for e in exprs),
        stage=sql.Identifier(stage), join=join, where=where, updates=sql.SQL(", ").join(updates),
    )


def _stage_and_upsert(c: _Connections, spec: EntitySpec, copy_out: sql.Composable) -> int:
    stage = f"stage_{spec.name}"
    c.dst.autocommit = False
    try:
        with c.dst.cursor() as cur:
            cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                sql.Identifier(stage), _column_defs(source_types(c.src, spec))))
        pipe_copy(c.src, copy_out, c.dst, sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(stage), _columns(spec)))
        with c.dst.cursor() as cur:
            cur.execute(upsert_sql(spec, stage))
            written = cur.rowcount
        c.dst.commit()
    except BaseException:
        c.dst.rollback()
        raise
    finally:
        c.dst.autocommit = True
    return written


def plain_load(bench: Bench) -> int:
    """(b): every entity, parents first, into the fresh `app`; returns rows written."""
    with _Connections(bench) as c:
        return sum(_stage_and_upsert(c, spec, _copy_out(spec)) for spec in ENTITIES)


def plain_delta(bench: Bench, since: datetime, until: datetime) -> int:
    """(c): the rows changed between `since` and `until`, upserted into the full `app`; returns rows written."""
    written = 0
    with _Connections(bench) as c:
        for spec in ENTITIES:
            copy_out = _copy_out(spec, "updated_at >= %(since)s AND updated_at <= %(until)s",
                                 {"since": since, "until": until}, c.src)
            written += _stage_and_upsert(c, spec, copy_out)
    return written


# --- (d) range checksums ----------------------------------------------------

def range_checksums(bench: Bench) -> int:
    """(d): one aggregate checksum pass per legacy table; returns rows covered."""
    rows = 0
    conn = bench.connect(SOURCE_DB)
    try:
        with conn.cursor() as cur:
            for spec in ENTITIES:
                table = sql.Identifier(spec.source_schema, spec.source_table)
                cur.execute(sql.SQL("SELECT min(id), max(id) FROM {}").format(table))
                lo, hi = cur.fetchone()
                if lo is None:
                    continue
                width = max(-(-(hi + 1 - lo) // CHECKSUM_SEGMENTS), 1)
                cur.execute(
                    sql.SQL("SELECT (id - %(lo)s) / %(width)s AS seg, count(*), "
                            "sum(('x' || left(md5(ROW({cols})::text), 16))::bit(64)::bigint) "
                            "FROM {table} GROUP BY 1").format(cols=_columns(spec), table=table),
                    {"lo": lo, "width": width},
                )
                rows += sum(count for _, count, _ in cur.fetchall())
    finally:
        conn.close()
    return rows
