"""Keyset extraction from the source, every row with its content hash.

Invariant: pages are `(cursor, id) > (last cursor, last id)` in
`(cursor, id)` order inside a half-open window, never OFFSET, so ties on the
cursor never lose or repeat a row; rows whose cursor is NULL are read in id
order before all others. The hash covers exactly the columns the spec reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from psycopg2 import sql
from psycopg2.extras import register_default_json, register_default_jsonb

from dbmig_pipeline.engine import copy_read, json_exact
from dbmig_pipeline.engine.id_array import IdArray
from dbmig_pipeline.engine import exact_times
from dbmig_pipeline.engine.pg_dates import ZONED_ENDS, exact_text, read_out_of_range_as_ends
from dbmig_pipeline.entities.spec import EntitySpec

HASH_COLUMN = "_row_hash"


#: What psycopg2 reads PostgreSQL's `infinity` and `-infinity` as: a position there is only exact as text.
LOSSY_TIMESTAMPS = ZONED_ENDS
#: The id of a position before every row of its cursor value: ids may be 0 or negative (an explicit
#: insert into a serial column). The smallest bigint whose literal is still a bigint (-2**63 is read as
#: numeric, which would turn the comparison into one the (cursor, id) index cannot serve).
BEFORE_ANY_ID = -(2 ** 63 - 1)


@dataclass(frozen=True)
class Position:
    """A keyset position: the last row read, `(ts, id)`.

    `in_nulls` marks a position inside the NULL-cursor rows, which come first.
    `ts_text` is the cursor as PostgreSQL prints it where `ts` is not exact:
    psycopg2 reads `infinity` as `datetime.max` and `-infinity` as
    `datetime.min`, and a page after `datetime.max` would read the infinite
    rows again forever (after `datetime.min`, skip the rest of them).
    """

    ts: datetime | None
    id: int
    in_nulls: bool = False
    ts_text: str | None = None

    @property
    def ts_param(self) -> datetime | str | None:
        """The cursor as a query parameter: its text where the Python value is not exact."""
        return self.ts_text if self.ts_text is not None else self.ts


def is_lossy(ts) -> bool:
    """Whether `ts` may stand for `±infinity` (see `Position.ts_text`)."""
    return ts is not None and not pd.isna(ts) and any(ts == lossy for lossy in LOSSY_TIMESTAMPS)


def position_after(conn, spec: EntitySpec, frame: pd.DataFrame, previous: Position | None) -> Position:
    """The position after the last row of a page read from `previous`. Only where the Python value may
    stand for a value outside Python's range does it ask `conn` (a source connection) for the exact one:
    one look-up by primary key, its transaction ended at once; otherwise `conn` is not touched.

    The row may have changed or gone since the page was read; then the position stays on the safe side:
    after the first instant, every `-infinity` row still to read (their ids decide); after the last
    instant, the infinite rows are read once more and the next page's last row is asked again."""
    last = frame.iloc[-1]
    row_id = int(last["id"])
    if previous is not None and previous.in_nulls:
        return Position(None, row_id, True)
    ts = last[spec.cursor_column]
    if not is_lossy(ts):
        return Position(ts, row_id)
    column = sql.Identifier(spec.cursor_column)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT {text}, {c} = %s FROM {table} WHERE id = %s").format(
                text=exact_text(column), c=column,
                table=sql.Identifier(spec.source_schema, spec.source_table)), (ts, row_id))
            found = cur.fetchone()
    finally:
        conn.rollback()
    if found is not None and (found[0] is not None or found[1]):
        return Position(ts, row_id, False, found[0])  # out of range: its text; the instant itself: exact
    # changed or gone since the page was read
    return Position(ts, row_id, False, "-infinity" if ts == LOSSY_TIMESTAMPS[1] else None)


@dataclass(frozen=True)
class Window:
    start: datetime | None  # inclusive; None: unbounded
    end: datetime | None  # exclusive; None: unbounded


def _columns(spec: EntitySpec) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c) for c in spec.source_columns)


def _select(spec: EntitySpec) -> sql.Composed:
    cols = _columns(spec)
    # hex text, not uuid: comparing and copying strings is cheaper than building UUID objects
    return sql.SQL("SELECT {cols}, md5(ROW({cols})::text) AS {hash} FROM {table}").format(
        cols=cols, hash=sql.Identifier(HASH_COLUMN), table=sql.Identifier(spec.source_schema, spec.source_table)
    )


def _window_conditions(spec: EntitySpec, window: Window, params: dict) -> list[sql.Composable]:
    cursor = sql.Identifier(spec.cursor_column)
    conditions: list[sql.Composable] = []
    if window.start is not None:
        conditions.append(sql.SQL("{} >= %(window_start)s").format(cursor))
        params["window_start"] = window.start
    if window.end is not None:
        conditions.append(sql.SQL("{} < %(window_end)s").format(cursor))
        params["window_end"] = window.end
    return conditions


def batch_query(spec: EntitySpec, window: Window, after: Position | None, limit: int) -> tuple[sql.Composed, dict]:
    """The next page after `after` (None: from the window start, NULL rows excluded)."""
    cursor = sql.Identifier(spec.cursor_column)
    params: dict = {"limit": limit}
    if after is not None and after.in_nulls:
        params["after_id"] = after.id
        query = sql.SQL("{select} WHERE {cursor} IS NULL AND id > %(after_id)s ORDER BY id LIMIT %(limit)s").format(
            select=_select(spec), cursor=cursor
        )
        return query, params
    conditions = _window_conditions(spec, window, params)
    if after is not None and after.ts is not None:
        conditions.append(sql.SQL("({}, id) > (%(after_ts)s, %(after_id)s)").format(cursor))
        params.update(after_ts=after.ts_param, after_id=after.id)
    else:
        conditions.append(sql.SQL("{} IS NOT NULL").format(cursor))
    query = sql.SQL("{select} WHERE {where} ORDER BY {cursor}, id LIMIT %(limit)s").format(
        select=_select(spec), where=sql.SQL(" AND ").join(conditions), cursor=cursor
    )
    return query, params


def count_query(spec: EntitySpec, window: Window, after: Position | None, include_nulls: bool) -> tuple[sql.Composed, dict]:
    """How many rows a pass from `after` will read (for progress and ETA)."""
    cursor = sql.Identifier(spec.cursor_column)
    table = sql.Identifier(spec.source_schema, spec.source_table)
    params: dict = {}
    conditions = _window_conditions(spec, window, params)
    if after is not None and after.ts is not None and not after.in_nulls:
        conditions.append(sql.SQL("({}, id) > (%(after_ts)s, %(after_id)s)").format(cursor))
        params.update(after_ts=after.ts_param, after_id=after.id)
    timed = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
        table, sql.SQL(" AND ").join([*conditions, sql.SQL("{} IS NOT NULL").format(cursor)])
    )
    if not include_nulls:
        return timed, params
    params["after_null_id"] = after.id if after is not None and after.in_nulls else BEFORE_ANY_ID
    nulls = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL AND id > %(after_null_id)s").format(table, cursor)
    return sql.SQL("SELECT ({}) + ({})").format(timed, nulls), params


def rows_by_id_query(spec: EntitySpec) -> sql.Composed:
    """The current source version of given ids (parked rows, retries)."""
    return sql.SQL("{select} WHERE id = ANY(%(ids)s) ORDER BY id").format(select=_select(spec))


def to_frame(spec: EntitySpec, rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows, columns=[*spec.source_columns, HASH_COLUMN])


def prepare_row_path(cur) -> None:
    """What `cur` reads differently from psycopg2's defaults, as the COPY path does: a year beyond 9999
    or before 1 as the ends of Python's range (engine/pg_dates.py), JSON numbers exactly
    (engine/json_exact.py)."""
    read_out_of_range_as_ends(cur)
    for register in (register_default_json, register_default_jsonb):
        register(cur, loads=json_exact.loads)


def read_rows(cur, spec: EntitySpec, query: sql.Composable, params: dict) -> pd.DataFrame:
    """The rows of `query` by COPY and Arrow (engine/copy_read.py), or row by row where that cannot read them
    exactly; with the exact text of dates and timestamps Python cannot hold (engine/exact_times.py)."""
    types = copy_read.column_types(cur, query, params)
    frame = None if types is None else copy_read.read_frame(cur, query, params, types)
    if frame is None:
        prepare_row_path(cur)
        cur.execute(query, params)
        frame = to_frame(spec, cur.fetchall())
    return exact_times.attach(cur, spec, frame, HASH_COLUMN)


def fetch_batch(cur, spec: EntitySpec, window: Window, after: Position | None, limit: int) -> pd.DataFrame:
    query, params = batch_query(spec, window, after, limit)
    return read_rows(cur, spec, query, params)


def fetch_by_ids(cur, spec: EntitySpec, ids: list[int]) -> pd.DataFrame:
    return read_rows(cur, spec, rows_by_id_query(spec), {"ids": IdArray(ids)})


#: The newest instant before which every source row is committed and visible:
#: no open transaction started earlier could still write an older `now()`.
SAFE_HORIZON_SQL = """
SELECT least(
    now(),
    (SELECT min(xact_start) FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND backend_type = 'client backend' AND xact_start IS NOT NULL)
)
"""


def safe_horizon(cur) -> datetime:
    cur.execute(SAFE_HORIZON_SQL)
    return cur.fetchone()[0]
