"""Bulk transfer of a transformed batch into a temporary staging table.

Invariant: the staging table lives and dies with the destination
transaction (ON COMMIT DROP), so a failed batch leaves nothing behind.
Values travel as CSV through COPY: the one bulk path PostgreSQL offers,
encoded by Arrow's C++ writer (no Python loop per value but for JSON).
"""
from __future__ import annotations

import io
import os
from collections.abc import Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
from psycopg2 import sql

from dbmig_pipeline.engine import json_exact
from dbmig_pipeline.entities.spec import EntitySpec, TargetColumn

#: Bookkeeping columns every staging table carries before the mapped ones.
BASE_COLUMNS = (TargetColumn("legacy_id", "bigint"), TargetColumn("created_at", "timestamptz"),
                TargetColumn("source_updated_at", "timestamptz"))
_INTEGER_TYPES = {"bigint", "integer", "smallint", "int"}
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")

# Arrow's default allocator (mimalloc) keeps what it freed for reuse: ~40 MiB more peak memory per
# process for the batches' Arrow strings and CSV buffers. The C library's allocator gives it back.
# ARROW_DEFAULT_MEMORY_POOL, when set, still decides.
if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
    pa.set_memory_pool(pa.system_memory_pool())


#: The source row's content hash, for the ledger rows the upsert writes (engine/load.py).
STAGE_HASH_COLUMN = TargetColumn("row_hash", "uuid")


def staging_columns(spec: EntitySpec) -> tuple[TargetColumn, ...]:
    parents = tuple(TargetColumn(p.staging_column, "bigint") for p in spec.parents)
    return BASE_COLUMNS + parents + spec.target_columns + (STAGE_HASH_COLUMN,)


def type_sql(sql_type: str) -> sql.Composable:
    """A column type as SQL: schema-qualified names are quoted identifiers."""
    array = sql_type.endswith("[]")
    base = sql_type.removesuffix("[]")
    if "." in base:
        schema, name = base.split(".", 1)
        composed: sql.Composable = sql.Identifier(schema, name)
    else:
        if not all(ch.isalnum() or ch in " (),_" for ch in base):
            raise ValueError(f"unexpected column type {sql_type!r}")
        composed = sql.SQL(base)
    return sql.Composed([composed, sql.SQL("[]")]) if array else composed


def create_staging(cur, name: str, columns: tuple[TargetColumn, ...]) -> None:
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(name),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), type_sql(c.sql_type)) for c in columns),
        )
    )


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _to_json(value) -> str | None:
    """JSON text, every number as the source wrote it (engine/json_exact.py). As str: Arrow built from
    orjson's bytes left ~20 MiB more peak RSS."""
    if _is_missing(value):
        return None
    return json_exact.dumps(value)


def _to_array(value) -> str | None:
    if _is_missing(value):
        return None
    return "{" + ",".join(str(int(v)) for v in value) + "}"


def _text(values: pd.Series, encode) -> pa.Array:
    return pa.array([encode(v) for v in values.to_numpy(dtype=object)], type=pa.string())


def _arrow(values: pd.Series, sql_type: str) -> pa.Array:
    """One column in the Arrow type whose CSV text PostgreSQL reads back as `sql_type`."""
    if sql_type == "timestamptz":
        # Arrow formats a zoned timestamp through the time zone database, value by value (5x slower):
        # UTC wall time with an explicit offset reads back the same whatever the session's time zone.
        stamps = pa.array(pd.to_datetime(values, utc=True), from_pandas=True).cast(pa.timestamp("us", "UTC"))
        return pa_compute.binary_join_element_wise(stamps.cast(pa.timestamp("us")).cast(pa.string()), "+00", "")
    if sql_type == "jsonb":
        return _text(values, _to_json)
    if sql_type.endswith("[]"):
        return _text(values, _to_array)
    if sql_type in _INTEGER_TYPES:
        return pa.array(pd.array(values, dtype="Int64"), type=pa.int64(), from_pandas=True)
    if sql_type == "boolean":
        return pa.array(pd.array(values, dtype="boolean"), type=pa.bool_(), from_pandas=True)
    if sql_type == "date":
        array = pa.array(values.to_numpy(dtype=object), from_pandas=True)
        return array.cast(pa.date32(), safe=False) if pa.types.is_timestamp(array.type) else array
    return pa.array(values, type=pa.string(), from_pandas=True)


def _with_texts(array: pa.Array, texts: Mapping[int, str]) -> pa.Array:
    values = array.cast(pa.string()).to_pylist()
    for position, text in texts.items():
        values[position] = text
    return pa.array(values, type=pa.string())


def encode_csv(frame: pd.DataFrame, columns: tuple[TargetColumn, ...],
               exact: Mapping[str, Mapping[int, str]] | None = None) -> bytes:
    """`frame`'s `columns` as the CSV COPY reads, encoded by Arrow's C++ writer.

    Every value is quoted (a bare carriage return would otherwise end the
    row) and NULL is the one unquoted empty field, so text keeps exactly what
    the transform produced, empty strings included. `exact` gives, by column
    and row position, the source's text of values Python cannot hold
    (engine/exact_times.py).
    """
    exact = exact or {}
    table = pa.table({c.name: _with_texts(_arrow(frame[c.name], c.sql_type), exact[c.name]) if exact.get(c.name)
                      else _arrow(frame[c.name], c.sql_type) for c in columns})
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, _CSV_OPTIONS)
    return sink.getvalue().to_pybytes()


def copy_frame(cur, table: str, frame: pd.DataFrame, columns: tuple[TargetColumn, ...],
               exact: Mapping[str, Mapping[int, str]] | None = None) -> None:
    """COPY `frame`'s `columns` into `table` (see `encode_csv`)."""
    if not frame.empty:
        copy_csv(cur, table, encode_csv(frame, columns, exact), columns)


def copy_csv(cur, table: str, data: bytes, columns: tuple[TargetColumn, ...]) -> None:
    """COPY CSV text made by `encode_csv` into `table`."""
    if not data:
        return
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    cur.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(sql.Identifier(table), names),
        io.BytesIO(data),
        size=1 << 16,
    )
