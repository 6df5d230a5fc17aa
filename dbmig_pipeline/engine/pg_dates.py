"""Dates and timestamps Python cannot hold, read as the ends of its range.

PostgreSQL keeps years up to 294276 and before Christ; Python's `date` and
`datetime` stop at 9999 and begin at year 1. psycopg2 reads `±infinity` as
the ends of Python's range but raises for a year beyond it (a typo such as
`20201-05-03`), and its error would stop the whole pass over one value.
Read the same way as infinity instead: a year after 9999 as the last
instant, one before year 1 as the first. The mapping rules then see "far
in the future" or "long ago" (a birth date after the row's creation is
NULL with a warning), keyset positions there ask for the exact value
(`extract.position_after`), and every other row goes on.
"""
from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg2.extensions as pg_ext
from psycopg2 import sql

_DATE_RANGE = (date.max, date.min)
_NAIVE_RANGE = (datetime.max, datetime.min)
#: the last and the first instant psycopg2 reads a timestamptz as (also for `infinity`, `-infinity`)
ZONED_ENDS = (datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC))


def _clamping(base, ends):
    def cast(value, cur):
        try:
            return base(value, cur)
        except ValueError:  # "year … is out of range": beyond 9999, or before year 1 (" BC")
            return ends[1] if value.rstrip().endswith("BC") else ends[0]
    return pg_ext.new_type(base.values, f"DBMIG_{base.name}", cast)


CASTERS = (_clamping(pg_ext.PYDATE, _DATE_RANGE), _clamping(pg_ext.PYDATETIME, _NAIVE_RANGE),
           _clamping(pg_ext.PYDATETIMETZ, ZONED_ENDS))


def read_out_of_range_as_ends(cur) -> None:
    """Install the casters on `cur` (a source cursor of the row path)."""
    for caster in CASTERS:
        pg_ext.register_type(caster, cur)


def exact_text(column: sql.Composable) -> sql.Composed:
    """SQL for the text of a timestamptz `column` Python cannot hold (±infinity, BC, beyond 9999); NULL for
    one it holds exactly. Written as ISO whatever the session's DateStyle: ISO input reads back the same
    under any DateStyle."""
    return sql.SQL(
        "CASE WHEN NOT isfinite({c}) THEN {c}::text "
        "WHEN {c} < '0001-01-01 00:00:00+00' OR {c} > '9999-12-31 23:59:59.999999+00' "
        "THEN to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' "
        "|| CASE WHEN {c} < '0001-01-01 00:00:00+00' THEN ' BC' ELSE '' END END"
    ).format(c=column)


def exact_date_text(column: sql.Composable) -> sql.Composed:
    """`exact_text` for a date `column`."""
    return sql.SQL(
        "CASE WHEN NOT isfinite({c}) THEN {c}::text "
        "WHEN {c} < '0001-01-01' OR {c} > '9999-12-31' "
        "THEN to_char({c}, 'YYYY-MM-DD') || CASE WHEN {c} < '0001-01-01' THEN ' BC' ELSE '' END END"
    ).format(c=column)
