"""Dates and timestamps Python cannot hold, written to the target as the source holds them.

Why: MAPPING.md copies `created_at`, `updated_at` and the other dates, and
PostgreSQL holds `±infinity`, years after 9999 and years before Christ;
Python and pandas read them as the ends of their range (engine/pg_dates.py),
which would store `9999-12-31 23:59:59.999999+00` where the source says
`infinity`. Such rows are rare, so the common path pays one vectorised
comparison per column: only the rows of a batch holding an end value are
asked again, by id, for the exact text (ISO, UTC: the target reads it back
the same whatever its DateStyle), and the staged CSV carries that text.

The look-up compares the row's content hash with the one its page read: a
row changed in between keeps the ends in this batch (its new version is
read again by a later pass and written exactly then), so a text never
belongs to another version than the row it is written with.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd
from psycopg2 import sql

from dbmig_pipeline.engine.id_array import IdArray
from dbmig_pipeline.engine.pg_dates import ZONED_ENDS, exact_date_text, exact_text
from dbmig_pipeline.entities.spec import EntitySpec

#: The source frame's column with each such row's exact texts ({source column: text}); absent when no
#: row of the batch needs one.
EXACT_COLUMN = "_exact_times"
_DATE_ENDS = (date.max, date.min)

#: {target column: {row position: exact text}}: what `staging.encode_csv` writes instead of the value
Overrides = Mapping[str, Mapping[int, str]]


def copied_times(spec: EntitySpec) -> tuple[tuple[str, str], ...]:
    """(source column, target column) of every date and timestamp the mapping copies."""
    return (("created_at", "created_at"), (spec.cursor_column, "source_updated_at"), *spec.copied_times)


def _is_date(spec: EntitySpec, target_column: str) -> bool:
    return any(c.name == target_column and c.sql_type == "date" for c in spec.target_columns)


def _at_an_end(values: pd.Series) -> np.ndarray:
    ends = ZONED_ENDS if isinstance(values.dtype, pd.DatetimeTZDtype) else (*ZONED_ENDS, *_DATE_ENDS)
    return values.isin(ends).to_numpy(dtype=bool)


def attach(cur, spec: EntitySpec, frame: pd.DataFrame, hash_column: str) -> pd.DataFrame:
    """`frame` (a page of source rows read on `cur`) with `EXACT_COLUMN` where a row holds a value at
    an end of Python's range: its exact text, asked by id in `cur`'s transaction."""
    if frame.empty:
        return frame
    pairs = copied_times(spec)
    at_end = np.zeros(len(frame), dtype=bool)
    for source_column, _ in pairs:
        at_end |= _at_an_end(frame[source_column])
    if not at_end.any():
        return frame
    texts = [(exact_date_text if _is_date(spec, target) else exact_text)(sql.Identifier(source))
             for source, target in pairs]
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.source_columns)
    cur.execute(sql.SQL("SELECT id, md5(ROW({columns})::text), {texts} FROM {table} WHERE id = ANY(%s)").format(
        columns=columns, texts=sql.SQL(", ").join(texts),
        table=sql.Identifier(spec.source_schema, spec.source_table)),
        (IdArray(frame["id"].to_numpy()[at_end].tolist()),))
    read_hash = dict(zip(frame["id"].astype("int64"), frame[hash_column].astype(str)))
    exact: dict[int, dict[str, str]] = {}
    for row_id, row_hash, *values in cur.fetchall():
        found = {source: text for (source, _), text in zip(pairs, values) if text is not None}
        if found and read_hash.get(row_id) == row_hash:  # the same version as the page's
            exact[row_id] = found
    if not exact:
        return frame
    return frame.assign(**{EXACT_COLUMN: frame["id"].map(exact).astype(object)})


def texts_by_id(frame: pd.DataFrame) -> dict[int, dict[str, str]]:
    """The exact texts `attach` found in `frame` (a source frame), by legacy id."""
    if EXACT_COLUMN not in frame.columns:
        return {}
    return {int(i): found for i, found in zip(frame["id"], frame[EXACT_COLUMN]) if isinstance(found, dict)}


def overrides(exact: Mapping[int, Mapping[str, str]], rows: pd.DataFrame, pairs: tuple[tuple[str, str], ...],
              id_column: str = "legacy_id") -> dict[str, dict[int, str]]:
    """Where `rows` (target rows by `id_column`) take an exact text instead of their value: each pair's
    target column, wherever the row holds a value (a rule that made it NULL still wins)."""
    if not exact:
        return {}
    found: dict[str, dict[int, str]] = {}
    for position, row_id in enumerate(rows[id_column]):
        texts = exact.get(int(row_id))
        if not texts:
            continue
        for source, target in pairs:
            if source in texts and target in rows.columns and not pd.isna(rows[target].iloc[position]):
                found.setdefault(target, {})[position] = texts[source]
    return found
