"""Batches read by COPY + Arrow (engine/copy_read.py) equal the rows psycopg2 builds, value for value.

The row path (`extract.to_frame` over `cursor.fetchall()`) is what the
transforms were written and tested against; the COPY path must hand them
the same frame, dtypes included, or step aside.
"""
from __future__ import annotations

from decimal import Decimal

import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine import copy_read
from dbmig_pipeline.engine.extract import Window, batch_query, prepare_row_path, read_rows, to_frame
from dbmig_pipeline.entities import ENTITIES
from dbmig_pipeline_tests.integration.engine_helpers import pair_fixture  # noqa: F401 (the `pair` fixture)

#: Values CSV and JSON make hard: quotes, separators, line ends, NULL against
#: empty, unicode, numbers beyond 64 bits, fractional seconds.
NASTY_ROWS = """
INSERT INTO nasty VALUES
 (1, 'plain', 'a', true, 1, 12.50, '2024-05-01', '2024-05-01 10:00:00.123456+00', '2024-05-01 10:00:00',
  '{"a": 1, "b": [1, 2.5, null], "c": "x"}', '{"k": "v"}'),
 (2, '', ' ', false, -32768, -0.01, '1900-01-01', '1970-01-01 00:00:00+00', '1999-12-31 23:59:59.999999',
  '[]', 'null'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, E'quote " comma , semi ; \\n newline \\r cr \\t tab', 'ü', true, 2147483647, 99999999.99,
  '2999-12-31', '2262-04-12 00:00:00+00', '0001-01-01 00:00:00',
  '{"big": 123456789012345678901234567890, "tiny": 1e-300, "s": "\\u00e9\\"\\\\"}', '"just a string"'),
 (5, 'NULL', '""', false, 0, 0, '2000-02-29', '2024-01-01 00:00:00.5+00', '2024-01-01 00:00:00.5',
  '{"nested": {"deep": [{"x": true}]}}', '42'),
 (6, '\\N', ',', true, 7, 1.10, '2020-01-01', '2020-01-01 12:00:00+00', '2020-01-01 12:00:00',
  '{}', '1.5e300'),
 (7, 'x', 'x', true, 8, 2.00, '2020-01-02', '2020-01-02 12:00:00+00', '2020-01-02 12:00:00',
  '{"r": 0.12345678901234567890, "inf": 1e400, "i": 12345678901234567.5}', '[1e-400, 1.10]')
"""


@pytest.fixture
def source(make_database):
    conn = psycopg2.connect(make_database("copy").replace("postgresql+psycopg2://", "postgresql://", 1),
                            options="-c timezone=UTC")
    yield conn
    conn.close()


def assert_same(got: pd.DataFrame, expected: pd.DataFrame, name: str = "frame") -> None:
    """Equal dtypes and values, and equal reprs value by value: pandas compares the dicts of an object
    column loosely (a float equals a long integer it cannot hold)."""
    pd.testing.assert_frame_equal(got, expected, obj=name)
    for column in expected.columns:
        assert [repr(v) for v in got[column].tolist()] == [repr(v) for v in expected[column].tolist()], column


def _row_path(cur, query, params=None) -> pd.DataFrame:
    prepare_row_path(cur)
    cur.execute(query, params)
    return pd.DataFrame.from_records(cur.fetchall(), columns=[c.name for c in cur.description])


def _copy_path(cur, query, params=None) -> pd.DataFrame | None:
    types = copy_read.column_types(cur, query, params or {})
    return None if types is None else copy_read.read_frame(cur, query, params or {}, types)


def test_nasty_values_read_by_copy_equal_the_row_path(source):
    with source.cursor() as cur:
        cur.execute("""CREATE TABLE nasty (id int PRIMARY KEY, t text, c char(2), b boolean, n int,
                       p numeric(10,2), d date, ts timestamptz, tsl timestamp, j jsonb, jj json)""")
        cur.execute(NASTY_ROWS)
        query = sql.SQL("SELECT *, md5(ROW(n.*)::text) AS h FROM nasty n ORDER BY id")

        expected, got = _row_path(cur, query), _copy_path(cur, query)

    assert got is not None, "every column type here has an exact Arrow reading"
    assert_same(got, expected)
    assert got.loc[1, "t"] == "" and pd.isna(got.loc[2, "t"])  # empty text is not NULL
    assert got.loc[3, "j"]["big"] == 123456789012345678901234567890  # beyond 64 bits: still exact
    # beyond a double: exact (engine/json_exact.py), where floats rounded them or made them infinite
    assert got.loc[6, "j"] == {"r": Decimal("0.12345678901234567890"), "inf": Decimal("1e400"),
                               "i": Decimal("12345678901234567.5")}
    assert got.loc[6, "jj"] == [Decimal("1e-400"), Decimal("1.10")]
    assert got.loc[1, "jj"] is None and got.loc[2, "jj"] is None  # JSON null and SQL NULL both read as None


def test_an_empty_result_reads_as_the_row_path_does(source):
    with source.cursor() as cur:
        cur.execute("CREATE TABLE empty_one (id int, t text, j jsonb)")
        query = sql.SQL("SELECT * FROM empty_one")
        got = _copy_path(cur, query)
        assert got is not None and got.empty and list(got.columns) == ["id", "t", "j"]


@pytest.mark.parametrize("column, value", [
    ("numeric", "1.5"),  # no precision: arbitrary digits, kept exact by the row path
    ("double precision", "1.5"),
    ("uuid", "'6f1c59a8-62d5-4c7e-9d1e-7f1b8a3b1c2d'"),
    ("int[]", "'{1,2}'"),
])
def test_a_type_without_an_exact_arrow_reading_takes_the_row_path(source, column, value):
    with source.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE other (id int, v {})").format(sql.SQL(column)))
        cur.execute(sql.SQL("INSERT INTO other VALUES (1, {})").format(sql.SQL(value)))
        assert copy_read.column_types(cur, sql.SQL("SELECT * FROM other"), {}) is None


@pytest.mark.parametrize("value", ["'infinity'", "'4713-01-01 BC'"])
def test_text_arrow_cannot_parse_takes_the_row_path_with_the_same_rows(source, value):
    with source.cursor() as cur:
        cur.execute("CREATE TABLE odd (id int, d date)")
        cur.execute(sql.SQL("INSERT INTO odd VALUES (1, {}), (2, '2020-01-01')").format(sql.SQL(value)))
        query = sql.SQL("SELECT * FROM odd ORDER BY id")
        assert _copy_path(cur, query) is None


def test_a_non_iso_datestyle_takes_the_row_path(source):
    with source.cursor() as cur:
        cur.execute("CREATE TABLE dated (id int, ts timestamptz)")
        cur.execute("INSERT INTO dated VALUES (1, '2024-05-01 10:00:00+00')")
        cur.execute("SET datestyle = 'SQL, DMY'")
        assert _copy_path(cur, sql.SQL("SELECT * FROM dated")) is None


def test_every_entity_of_a_seeded_source_reads_the_same_either_way(pair):
    seed_legacy(pair.source_url, scale=0.0002)
    conn = pair.source.raw_connection()
    try:
        with conn.cursor() as cur:
            for spec in ENTITIES:
                query, params = batch_query(spec, Window(None, None), None, 100_000)
                prepare_row_path(cur)
                cur.execute(query, params)
                expected = to_frame(spec, cur.fetchall())
                assert copy_read.column_types(cur, query, params) is not None, spec.name
                got = read_rows(cur, spec, query, params)
                assert len(got) > 0, spec.name
                assert_same(got, expected, spec.name)
    finally:
        conn.close()


def test_the_fallback_is_logged_once_without_the_values(source, caplog):
    caplog.set_level("INFO", logger="dbmig_pipeline.engine.copy_read")
    with source.cursor() as cur:
        cur.execute("CREATE TABLE secret (id int, born date)")
        cur.execute("INSERT INTO secret VALUES (1, '0044-03-15 BC')")
        for _ in range(2):
            assert _copy_path(cur, sql.SQL("SELECT * FROM secret")) is None
    said = [r.getMessage() for r in caplog.records if r.name == "dbmig_pipeline.engine.copy_read"]
    assert len(said) == 1 and "row by row" in said[0] and "id, born" in said[0]
    assert "0044" not in said[0]
