"""Baseline analysis: which source rows differ from what was migrated, found by checksums.

Invariant: both databases aggregate `(count, sum of 64-bit hash prefixes)`
per id range themselves; only ranges whose aggregates differ are split and
compared again, and only the smallest differing ranges are fetched row by
row. Memory stays flat and a source that did not change costs one scan.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from psycopg2 import sql

from dbmig_pipeline.entities.spec import EntitySpec

#: Ranges at most this wide (in ids) are compared row by row.
LEAF_WIDTH = 4096
#: A differing range is split into this many sub-ranges.
FANOUT = 16
#: The first level: this many ranges over the whole id span.
TOP_SEGMENTS = 256


@dataclass
class Baseline:
    entity: str
    source_rows: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    parked: int = 0
    quarantined: int = 0
    ranges_compared: int = 0
    rows_fetched: int = 0
    #: the differing leaf ranges [lo, hi): what a repair has to look at again
    leaves: list[tuple[int, int]] = field(default_factory=list, repr=False)
    #: smallest and largest differing id, per kind
    new_id_range: tuple[int, int] | None = None
    changed_id_range: tuple[int, int] | None = None
    deleted_id_range: tuple[int, int] | None = None

    @property
    def differences(self) -> int:
        return self.new + self.changed + self.deleted

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("leaves")
        return data

    def _note(self, kind: str, ids: list[int]) -> None:
        if not ids:
            return
        setattr(self, kind, getattr(self, kind) + len(ids))
        current = getattr(self, f"{kind}_id_range")
        lo, hi = min(ids), max(ids)
        if current:
            lo, hi = min(lo, current[0]), max(hi, current[1])
        setattr(self, f"{kind}_id_range", (lo, hi))


#: Called with (new, changed, deleted) legacy ids of one differing leaf range.
DifferenceHandler = Callable[[list[int], list[int], list[int]], None]


def _hash_prefix(expr: sql.Composable) -> sql.Composed:
    """The first 64 bits of a hex md5 as a signed bigint (summed as numeric: no overflow)."""
    return sql.SQL("('x' || left({}, 16))::bit(64)::bigint").format(expr)


def _source_hash(spec: EntitySpec) -> sql.Composed:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in spec.source_columns)
    return sql.SQL("md5(ROW({})::text)").format(cols)


_LEDGER_HASH = sql.SQL("replace(row_hash::text, '-', '')")


def _source_from(spec: EntitySpec) -> sql.Composed:
    return sql.SQL("FROM {} WHERE id >= %(lo)s AND id < %(hi)s").format(
        sql.Identifier(spec.source_schema, spec.source_table))


_LEDGER_FROM = sql.SQL(
    "FROM dbmig.row_ledger WHERE entity = %(entity)s AND outcome <> 'deleted' "
    "AND legacy_id >= %(lo)s AND legacy_id < %(hi)s"
)


def _segment_query(id_col: sql.Composable, hash_expr: sql.Composable, from_clause: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "SELECT ({id}::bigint - %(lo)s) / %(width)s AS seg, count(*), sum({h}) {src} GROUP BY 1"
    ).format(id=id_col, h=_hash_prefix(hash_expr), src=from_clause)


def _aggregates(cur, query: sql.Composed, params: dict) -> dict[int, tuple[int, int]]:
    cur.execute(query, params)
    return {seg: (count, int(total or 0)) for seg, count, total in cur.fetchall()}


def _id_span(src_cur, dst_cur, spec: EntitySpec) -> tuple[int, int] | None:
    src_cur.execute(sql.SQL("SELECT min(id), max(id) FROM {}").format(
        sql.Identifier(spec.source_schema, spec.source_table)))
    s_lo, s_hi = src_cur.fetchone()
    dst_cur.execute("SELECT min(legacy_id), max(legacy_id) FROM dbmig.row_ledger WHERE entity = %s "
                    "AND outcome <> 'deleted'", (spec.name,))
    d_lo, d_hi = dst_cur.fetchone()
    lows = [v for v in (s_lo, d_lo) if v is not None]
    highs = [v for v in (s_hi, d_hi) if v is not None]
    if not lows:
        return None
    return min(lows), max(highs) + 1


def _differing_ranges(src_cur, dst_cur, spec: EntitySpec, lo: int, hi: int, segments: int,
                      result: Baseline) -> Iterator[tuple[int, int]]:
    """Yield the smallest id ranges [lo, hi) whose aggregates differ, depth first."""
    width = max(-(-(hi - lo) // segments), 1)
    params = {"lo": lo, "hi": hi, "width": width, "entity": spec.name}
    source = _aggregates(src_cur, _segment_query(sql.SQL("id"), _source_hash(spec), _source_from(spec)), params)
    ledger = _aggregates(dst_cur, _segment_query(sql.SQL("legacy_id"), _LEDGER_HASH, _LEDGER_FROM), params)
    result.ranges_compared += 1
    for seg in sorted(set(source) | set(ledger)):
        if source.get(seg) == ledger.get(seg):
            result.unchanged += source[seg][0]
            continue
        seg_lo, seg_hi = lo + seg * width, min(lo + (seg + 1) * width, hi)
        if seg_hi - seg_lo <= LEAF_WIDTH:
            yield seg_lo, seg_hi
        else:
            yield from _differing_ranges(src_cur, dst_cur, spec, seg_lo, seg_hi, FANOUT, result)


def compare_leaf(src_cur, dst_cur, spec: EntitySpec, lo: int, hi: int,
                 result: Baseline) -> tuple[list[int], list[int], list[int]]:
    """Row-by-row comparison of one id range: (new, changed, deleted) legacy ids."""
    params = {"lo": lo, "hi": hi, "entity": spec.name}
    src_cur.execute(sql.SQL("SELECT id, {h} {src}").format(h=_source_hash(spec), src=_source_from(spec)), params)
    source = dict(src_cur.fetchall())
    dst_cur.execute(sql.SQL("SELECT legacy_id, {h} {src}").format(h=_LEDGER_HASH, src=_LEDGER_FROM), params)
    ledger = dict(dst_cur.fetchall())
    result.rows_fetched += len(source) + len(ledger)
    new, changed = [], []
    for legacy_id, digest in source.items():
        recorded = ledger.get(legacy_id)
        if recorded is None:
            new.append(legacy_id)
        elif recorded != digest:
            changed.append(legacy_id)
        else:
            result.unchanged += 1
    deleted = sorted(i for i in ledger if i not in source)
    result._note("new", new)
    result._note("changed", changed)
    result._note("deleted", deleted)
    return new, changed, deleted


def baseline_entity(src_conn, dst_conn, spec: EntitySpec, *,
                    on_differences: DifferenceHandler | None = None) -> Baseline:
    """Compare every source row's content hash with the hash recorded at its migration.

    Read-only on both sides; the ids that differ are handed to
    `on_differences` one leaf range at a time, never all held at once.
    """
    result = Baseline(spec.name)
    with src_conn.cursor() as src_cur, dst_conn.cursor() as dst_cur:
        src_cur.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(spec.source_schema, spec.source_table)))
        result.source_rows = src_cur.fetchone()[0]
        span = _id_span(src_cur, dst_cur, spec)
        if span is not None:
            for lo, hi in _differing_ranges(src_cur, dst_cur, spec, span[0], span[1], TOP_SEGMENTS, result):
                new, changed, deleted = compare_leaf(src_cur, dst_cur, spec, lo, hi, result)
                if new or changed or deleted:
                    result.leaves.append((lo, hi))
                if on_differences and (new or changed or deleted):
                    on_differences(new, changed, deleted)
        dst_cur.execute(
            """
            SELECT count(*) FILTER (WHERE category = 'missing_parent'),
                   count(*) FILTER (WHERE category <> 'missing_parent')
              FROM dbmig.row_errors WHERE entity = %s AND resolved_at IS NULL
            """,
            (spec.name,),
        )
        result.parked, result.quarantined = dst_cur.fetchone()
    src_conn.rollback()
    dst_conn.rollback()
    return result
