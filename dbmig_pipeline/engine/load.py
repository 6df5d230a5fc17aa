"""Set-based load of one staged batch into the target table.

Invariant: one INSERT … SELECT … ON CONFLICT per batch (with the ledger rows
of what it wrote; a first load's batch of rows neither side can hold drops
the ON CONFLICT); parents are resolved by joining on their `legacy_id`, so a
child whose parent is not in the target is never written (it is parked
instead), and a version older than the one in the target never overwrites it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from psycopg2 import sql

from dbmig_pipeline.engine.id_array import IdArray
from dbmig_pipeline.engine.staging import type_sql
from dbmig_pipeline.entities.spec import EntitySpec


def _target(spec: EntitySpec) -> sql.Identifier:
    return sql.Identifier(spec.target_schema, spec.target_table)


def _parent_table(spec: EntitySpec, parent_entity: str, specs_by_name: dict[str, EntitySpec]) -> sql.Identifier:
    parent = specs_by_name[parent_entity]
    return sql.Identifier(parent.target_schema, parent.target_table)


@dataclass(frozen=True)
class Collision:
    key: str
    value: str
    legacy_ids: tuple[int, ...]
    #: target rows (not in this batch) that already hold the value
    target_ids: tuple[int, ...] = ()


def find_collisions(cur, spec: EntitySpec, stage: str) -> list[Collision]:
    """Natural keys that two distinct legacy rows would share after the batch."""
    found: list[Collision] = []
    for key in spec.unique_keys:
        column = sql.Identifier(key)
        cur.execute(
            sql.SQL(
                "SELECT {col}, array_agg(legacy_id ORDER BY legacy_id) FROM {stage} "
                "GROUP BY {col} HAVING count(*) > 1 ORDER BY 1"
            ).format(col=column, stage=sql.Identifier(stage))
        )
        found += [Collision(key, value, tuple(ids)) for value, ids in cur.fetchall()]
        cur.execute(
            sql.SQL(
                """
                SELECT s.{col}, array_agg(DISTINCT s.legacy_id), array_agg(DISTINCT t.legacy_id)
                  FROM {stage} s
                  JOIN {target} t ON t.{col} = s.{col} AND t.legacy_id <> s.legacy_id
                 WHERE NOT EXISTS (SELECT 1 FROM {stage} s2 WHERE s2.legacy_id = t.legacy_id)
                 GROUP BY s.{col} ORDER BY 1
                """
            ).format(col=column, stage=sql.Identifier(stage), target=_target(spec))
        )
        found += [Collision(key, value, tuple(ids), tuple(tids)) for value, ids, tids in cur.fetchall()]
    return found


def keys_held_in_target(cur, spec: EntitySpec, rows: pd.DataFrame, staged_ids: list[int]) -> bool:
    """Whether a natural key of `rows` (staged rows the upsert left out) is held by a target row
    that is not in the batch (`staged_ids`).

    The values travel as an array rather than being picked out of the
    staging table, whose row count the planner does not know, and each is
    looked up on its own (LATERAL … LIMIT 1): a join let the planner scan the
    whole target instead of probing its unique index a few times.
    """
    for key in spec.unique_keys:
        sql_type = next(c.sql_type for c in spec.target_columns if c.name == key)
        values = rows[key].dropna()
        if values.empty:
            continue
        cur.execute(
            sql.SQL(
                """
                SELECT 1 FROM unnest(%(values)s::{type}[]) AS u(value)
                 CROSS JOIN LATERAL (SELECT 1 FROM {target} t WHERE t.{col} = u.value
                                        AND t.legacy_id <> ALL(%(staged)s) LIMIT 1) AS held
                 LIMIT 1
                """
            ).format(type=type_sql(sql_type), target=_target(spec), col=sql.Identifier(key)),
            {"values": [str(v) for v in values], "staged": IdArray(staged_ids)},
        )
        if cur.fetchone():
            return True
    return False


#: What a key handed over within a batch holds until the upsert gives it its new value: a leading
#: space, which no mapped value has (every text value is trimmed, MAPPING.md §3), and the row's id.
_HANDOVER_PREFIX = " dbmig: handing over, legacy id "
#: How a live row's released key ends (`restore_keys`, `release_keys`).
_CHANGED = "changed it in the source"


@dataclass(frozen=True)
class MovedKeys:
    """Target rows whose natural key was set aside for a batch (see `set_changing_keys_aside`)."""

    key: str
    legacy_ids: list[int]
    values: list[str]


def _text_keys(spec: EntitySpec) -> list[str]:
    types = {c.name: c.sql_type for c in spec.target_columns}
    return [key for key in spec.unique_keys if types[key] == "text"]


def set_changing_keys_aside(cur, spec: EntitySpec, rows: pd.DataFrame) -> list[MovedKeys]:
    """Give the target rows of staged `rows` whose natural key changes a placeholder key first.

    A unique constraint is checked row by row within one INSERT … ON
    CONFLICT: two orders that swap their numbers, or pass one along in the
    wrong order, fail on a key that the batch itself frees. With the old
    keys set aside, the upsert writes the new ones; `restore_keys` gives the
    rows it did not write (stale or parked) their key back. Same
    transaction: nobody ever sees a placeholder. The old keys are read under
    the rows' locks (FOR UPDATE): a writer of another batch that changed
    one meanwhile has committed by then, and its key is the one kept. Text
    keys only.
    """
    moved = []
    for key in _text_keys(spec):
        staged = rows[["legacy_id", key]].dropna()
        if staged.empty:
            continue
        cur.execute(
            sql.SQL(
                """
                WITH o AS (SELECT t2.legacy_id, t2.{col} AS old
                             FROM unnest(%(ids)s::bigint[], %(values)s::text[]) AS s(legacy_id, value)
                             JOIN {target} t2 ON t2.legacy_id = s.legacy_id AND t2.{col} <> s.value
                              FOR UPDATE OF t2)
                UPDATE {target} t SET {col} = %(prefix)s || t.legacy_id
                  FROM o
                 WHERE t.legacy_id = o.legacy_id
                RETURNING o.legacy_id, o.old
                """
            ).format(target=_target(spec), col=sql.Identifier(key)),
            {"prefix": _HANDOVER_PREFIX, "ids": IdArray(staged["legacy_id"]), "values": [str(v) for v in staged[key]]},
        )
        found = cur.fetchall()
        if found:
            moved.append(MovedKeys(key, [i for i, _ in found], [v for _, v in found]))
    return moved


def restore_keys(cur, spec: EntitySpec, moved: list[MovedKeys], stage: str, *, overwrite: bool = False) -> list[int]:
    """Rows whose key `set_changing_keys_aside` set aside and the upsert did not write get it back;
    returns the ids of those that gave it up instead.

    A row left out although its version is not older than the target's (its parent is missing:
    parked) no longer has its old key in the source; when a row of the batch took that key, it
    gets ` (released: legacy id N changed it in the source)` appended (lower case, as
    `release_keys`), so that one parked row does not stop the entity. A row left out because the
    target holds a newer version still owns its key: taking it is a real collision
    (UniqueViolation)."""
    released: list[int] = []
    for m in moved:
        cur.execute(
            sql.SQL(
                """
                UPDATE {target} t
                   SET {col} = CASE WHEN (%(overwrite)s OR t.source_updated_at IS NULL
                                          OR s.source_updated_at IS NULL OR s.source_updated_at >= t.source_updated_at)
                                     AND EXISTS (SELECT 1 FROM {target} o WHERE o.{col} = u.old)
                                    THEN u.old || ' (released: legacy id ' || t.legacy_id || ' ' || %(why)s || ')'
                                    ELSE u.old END
                  FROM unnest(%(ids)s::bigint[], %(values)s::text[]) AS u(legacy_id, old)
                  JOIN {stage} s ON s.legacy_id = u.legacy_id
                 WHERE t.legacy_id = u.legacy_id AND t.{col} = %(prefix)s || u.legacy_id
                RETURNING t.legacy_id, t.{col} <> u.old
                """
            ).format(target=_target(spec), col=sql.Identifier(m.key), stage=sql.Identifier(stage)),
            {"prefix": _HANDOVER_PREFIX, "ids": IdArray(m.legacy_ids), "values": m.values, "overwrite": overwrite,
             "why": _CHANGED},
        )
        released += [i for i, gave_up in cur.fetchall() if gave_up]
    return sorted(set(released))


def release_keys(cur, spec: EntitySpec, legacy_ids: list[int], *, deleted: bool = True) -> None:
    """The natural keys of these target rows given up: each gets the text
    ` (released: legacy id N was deleted)` appended (soft-deleted rows), or
    ` (released: legacy id N changed it in the source)` (`deleted=False`: live rows whose new version
    could not be written under its new key), lower case, which no mapped (upper-cased, trimmed) value
    has; the row is kept (MAPPING.md §4), its old key still readable. A row that comes back, or loads,
    gets the key its source row then has. Text keys only."""
    for key in _text_keys(spec):
        cur.execute(
            sql.SQL(
                """
                UPDATE {target} SET {col} = {col} || ' (released: legacy id ' || legacy_id || ' ' || %(why)s || ')'
                 WHERE legacy_id = ANY(%(ids)s) AND (deleted_at IS NOT NULL OR NOT %(deleted)s)
                   AND {col} NOT LIKE '%% (released: %%'
                """
            ).format(target=_target(spec), col=sql.Identifier(key)),
            {"ids": IdArray(legacy_ids), "deleted": deleted, "why": "was deleted" if deleted else _CHANGED},
        )


def keys_held_by_others(cur, spec: EntitySpec, rows: pd.DataFrame) -> list[Collision]:
    """Natural keys of staged `rows` that other legacy rows hold in the target (in the batch or not)."""
    found: list[Collision] = []
    for key in spec.unique_keys:
        sql_type = next(c.sql_type for c in spec.target_columns if c.name == key)
        staged = rows[["legacy_id", key]].dropna()
        if staged.empty:
            continue
        cur.execute(
            sql.SQL(
                """
                SELECT s.value, array_agg(DISTINCT s.legacy_id ORDER BY s.legacy_id),
                       array_agg(DISTINCT t.legacy_id ORDER BY t.legacy_id)
                  FROM unnest(%(ids)s::bigint[], %(values)s::{type}[]) AS s(legacy_id, value)
                  JOIN {target} t ON t.{col} = s.value AND t.legacy_id <> s.legacy_id
                 GROUP BY s.value ORDER BY 1
                """
            ).format(type=type_sql(sql_type), target=_target(spec), col=sql.Identifier(key)),
            {"ids": IdArray(staged["legacy_id"]), "values": [str(v) for v in staged[key]]},
        )
        found += [Collision(key, value, tuple(ids), tuple(tids)) for value, ids, tids in cur.fetchall()]
    return found


@dataclass(frozen=True)
class ParkedRow:
    """A staged row left out for a missing parent, and the parent it waits for."""

    legacy_id: int
    detail: str
    parent_entity: str
    parent_id: int


def missing_parents(cur, spec: EntitySpec, rows: pd.DataFrame,
                    specs_by_name: dict[str, EntitySpec]) -> list[ParkedRow]:
    """Rows of `rows` (staged rows) whose parent is not in the target, one per row (its first
    missing parent), in id order.

    Asked after the upsert, for the rows it did not write: its join on the
    parents already left these out, so the common batch (every parent
    present) pays for no second look-up. The ids travel as arrays, which the
    planner sizes right (see `keys_held_in_target`).
    """
    parked: dict[int, ParkedRow] = {}
    for parent in spec.parents:
        cur.execute(
            sql.SQL(
                """
                SELECT u.legacy_id, u.parent_id
                  FROM unnest(%(ids)s, %(parents)s) AS u(legacy_id, parent_id)
                 WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.legacy_id = u.parent_id)
                """
            ).format(parent=_parent_table(spec, parent.entity, specs_by_name)),
            {"ids": IdArray(rows["legacy_id"]), "parents": IdArray(rows[parent.staging_column])},
        )
        for legacy_id, parent_id in cur.fetchall():
            parked.setdefault(legacy_id, ParkedRow(
                legacy_id, f"{parent.source_column} {parent_id} is not (yet) in {parent.entity}; parked until it arrives",
                parent.entity, parent_id))
    return [parked[i] for i in sorted(parked)]


def upsert(cur, spec: EntitySpec, stage: str, specs_by_name: dict[str, EntitySpec], *,
           overwrite: bool = False, new_rows: bool = False) -> list[int]:
    """Insert or update the staged rows and record the written ones in the ledger as loaded;
    returns the legacy ids written.

    The ledger rows (the stage's `row_hash`) are written by the same
    statement, from the rows the upsert returned: no second trip of the
    hashes through the client. They go in in key order: neighbouring keys
    land on the same index pages (a fifth less time than in batch order).
    `overwrite` lifts the no-regression guard (of both): for repairs that
    read the source's current row by id, the source is the truth even when
    its timestamp went backwards (a row restored from a backup).

    `new_rows` says that neither the target nor the ledger can hold any of
    the staged rows (a first load's first reads): both are plain INSERTs,
    without ON CONFLICT's speculative insertion (~7 % of the statement). A
    row that is there after all raises UniqueViolation, as a natural-key
    collision does; the caller then asks again without `new_rows`.
    """
    mapped = [c.name for c in spec.target_columns]
    insert_cols = ["legacy_id", "created_at", "source_updated_at", *[p.target_column for p in spec.parents], *mapped]
    select_exprs = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in ("legacy_id", "created_at", "source_updated_at")]
    joins = []
    for i, parent in enumerate(spec.parents):
        alias = sql.Identifier(f"p{i}")
        select_exprs.append(sql.SQL("{}.id").format(alias))
        joins.append(
            sql.SQL("JOIN {table} {alias} ON {alias}.legacy_id = s.{col}").format(
                table=_parent_table(spec, parent.entity, specs_by_name), alias=alias,
                col=sql.Identifier(parent.staging_column),
            )
        )
    select_exprs += [sql.SQL("s.{}").format(sql.Identifier(c)) for c in mapped]
    updates = [
        sql.SQL("{col} = EXCLUDED.{col}").format(col=sql.Identifier(c)) for c in insert_cols if c != "legacy_id"
    ]
    updates += [sql.SQL("synced_at = now()"), sql.SQL("deleted_at = NULL")]
    target_conflict = sql.SQL("") if new_rows else sql.SQL(
        """
            ON CONFLICT ({key}) DO UPDATE SET {updates}
             WHERE %(overwrite)s OR t.source_updated_at IS NULL OR EXCLUDED.source_updated_at IS NULL
                OR EXCLUDED.source_updated_at >= t.source_updated_at"""
    ).format(key=sql.Identifier(spec.conflict_key), updates=sql.SQL(", ").join(updates))
    ledger_conflict = sql.SQL("") if new_rows else sql.SQL(
        """
            ON CONFLICT (entity, legacy_id) DO UPDATE
               SET row_hash = EXCLUDED.row_hash, source_updated_at = EXCLUDED.source_updated_at,
                   outcome = EXCLUDED.outcome, recorded_at = now()
             WHERE %(overwrite)s OR l.source_updated_at IS NULL OR EXCLUDED.source_updated_at IS NULL
                OR EXCLUDED.source_updated_at >= l.source_updated_at"""
    )
    query = sql.SQL(
        """
        WITH written AS (
            INSERT INTO {target} AS t ({cols})
            SELECT {exprs} FROM {stage} s {joins}{target_conflict}
            RETURNING t.legacy_id
        ), ledger AS (
            INSERT INTO dbmig.row_ledger AS l (entity, legacy_id, row_hash, source_updated_at, outcome)
            SELECT %(entity)s, s.legacy_id, s.row_hash, s.source_updated_at, 'loaded'
              FROM written w JOIN {stage} s ON s.legacy_id = w.legacy_id
             ORDER BY s.legacy_id{ledger_conflict}
        )
        SELECT legacy_id FROM written
        """
    ).format(
        target=_target(spec),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in insert_cols),
        exprs=sql.SQL(", ").join(select_exprs),
        stage=sql.Identifier(stage),
        joins=sql.SQL(" ").join(joins),
        target_conflict=target_conflict,
        ledger_conflict=ledger_conflict,
    )
    cur.execute(query, {"overwrite": overwrite, "entity": spec.name})
    return [row[0] for row in cur.fetchall()]


def target_is_empty(cur, spec: EntitySpec) -> bool:
    cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(_target(spec)))
    return cur.fetchone()[0]


def soft_delete_rows(cur, spec: EntitySpec, legacy_ids: list[int]) -> int:
    """Set deleted_at on target rows whose source row disappeared (the rows are kept)."""
    cur.execute(
        sql.SQL("UPDATE {} SET deleted_at = now() WHERE legacy_id = ANY(%(ids)s) AND deleted_at IS NULL").format(
            _target(spec)),
        {"ids": IdArray(legacy_ids)},
    )
    return cur.rowcount
