"""Schema drift, classified: which differences between an accepted table
fingerprint and the current one halt an entity, and how to explain them.

Pure functions over the JSON fingerprints `engine/drift.py` reads from the
catalogs; nothing here touches a database, so every rule is unit-tested.

Invariant: a difference is judged by what the mapping relies on. On the
source: the columns the spec reads, the primary key on `id`, and the foreign
key of every parent reference. On the target: every column and constraint,
because the load writes the table as a whole.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from dbmig_pipeline.entities.spec import EntitySpec

SOURCE = "source"
TARGET = "target"
BREAKING = "breaking"
ADDITIVE = "additive"
OK = "ok"

STRICT = "strict"
NORMAL = "normal"
LENIENT = "lenient"

#: target columns every load writes besides the mapped ones and the parent uuids
BOOKKEEPING_COLUMNS = ("id", "legacy_id", "created_at", "source_updated_at", "synced_at", "deleted_at")

_CONSTRAINT_KINDS = {"p": "primary key", "u": "unique constraint", "f": "foreign key", "c": "check constraint",
                     "x": "exclusion constraint"}


@dataclass(frozen=True)
class Difference:
    """One change between the accepted and the current schema of one table."""

    side: str  # SOURCE or TARGET
    table: str  # schema.table
    change: str  # table_missing, column_dropped, column_added, column_type, column_nullability,
    #              column_default, constraint_dropped, constraint_added, index_dropped, index_added
    subject: str  # the column, or the constraint / index definition
    before: str | None
    after: str | None
    severity: str  # BREAKING or ADDITIVE (the "normal" strictness)
    critical: bool  # halts even when lenient: a column the mapping reads (or the load writes) dropped or retyped
    reason: str

    def halts(self, strictness: str) -> bool:
        if strictness == STRICT:
            return True
        if strictness == LENIENT:
            return self.critical
        return self.severity == BREAKING

    def describe(self) -> str:
        """One line: where, what changed (before → after), why it matters."""
        column = f"{self.side} {self.table}.{self.subject}"
        what = {
            "table_missing": f"{self.side} {self.table}: table gone (or the role cannot see it)",
            "column_dropped": f"{column}: column dropped" + (f" (was {self.before})" if self.before else ""),
            "column_added": f"{column}: column added ({self.after})",
            "column_type": f"{column}: type {self.before} → {self.after}",
            "column_nullability": f"{column}: {self.before} → {self.after}",
            "column_default": f"{column}: default {self.before or 'none'} → {self.after or 'none'}",
        }.get(self.change)
        if what is None:  # a constraint or an index: before/after hold its kind
            verb = "dropped" if self.change.endswith("_dropped") else "added"
            what = f"{self.side} {self.table}: {self.before or self.after} {verb}: {self.subject}"
        return f"{what} — {self.reason} [{self.severity}]"

    def as_dict(self) -> dict:
        return asdict(self)


def _null(not_null: bool) -> str:
    return "NOT NULL" if not_null else "nullable"


def source_read_columns(spec: EntitySpec) -> frozenset[str]:
    return frozenset(spec.source_columns)


def target_written_columns(spec: EntitySpec) -> frozenset[str]:
    return frozenset((*BOOKKEEPING_COLUMNS, *(p.target_column for p in spec.parents), *spec.target_column_names))


def diff_tables(spec: EntitySpec, side: str, accepted: dict, current: dict) -> list[Difference]:
    """Every difference between two fingerprints of the table `spec` reads (source) or writes (target)."""
    table = accepted.get("table") or current.get("table")
    judge = _judge_source if side == SOURCE else _judge_target
    if not current.get("exists", True):
        return [Difference(side, table, "table_missing", table, table, None, BREAKING, True,
                           "the mapping cannot read or write it")]
    found: list[Difference] = []
    found += _column_changes(accepted.get("columns", {}), current.get("columns", {}))
    found += _set_changes("constraint", accepted.get("constraints", []), current.get("constraints", []))
    found += _set_changes("index", accepted.get("indexes", []), current.get("indexes", []))
    judged = [judge(spec, side, table, *raw) for raw in found]
    return _with_rename_hints(judged)


def _column_changes(before: dict, after: dict) -> list[tuple]:
    out = []
    for name in sorted(before.keys() - after.keys()):
        out.append(("column_dropped", name, before[name]["type"], None, before[name], None))
    for name in sorted(after.keys() - before.keys()):
        out.append(("column_added", name, None, after[name]["type"], None, after[name]))
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        if old["type"] != new["type"]:
            out.append(("column_type", name, old["type"], new["type"], old, new))
        if old["not_null"] != new["not_null"]:
            out.append(("column_nullability", name, _null(old["not_null"]), _null(new["not_null"]), old, new))
        if old.get("default") != new.get("default"):
            out.append(("column_default", name, old.get("default"), new.get("default"), old, new))
    return out


def _key(item: dict) -> tuple:
    return item.get("kind", "i"), item["definition"]


def _set_changes(what: str, before: list[dict], after: list[dict]) -> list[tuple]:
    """Constraints and indexes are matched by definition, never by name or OID: a drop and
    re-create with the same definition (as the seeder does) is no change."""
    old = {_key(i): i for i in before}
    new = {_key(i): i for i in after}
    out = []
    for key in sorted(old.keys() - new.keys()):
        out.append((f"{what}_dropped", key[1], _label(what, old[key]), None, old[key], None))
    for key in sorted(new.keys() - old.keys()):
        out.append((f"{what}_added", key[1], None, _label(what, new[key]), None, new[key]))
    return out


def _label(what: str, item: dict) -> str:
    if what == "index":
        return "unique index" if item.get("unique") else "index"
    return _CONSTRAINT_KINDS.get(item["kind"], "constraint")


def _judge_source(spec: EntitySpec, side: str, table: str, change: str, subject: str, before, after,
                  old: dict | None, new: dict | None) -> Difference:
    read = source_read_columns(spec)
    parent_columns = {p.source_column for p in spec.parents}

    def diff(severity: str, reason: str, critical: bool = False) -> Difference:
        return Difference(side, table, change, subject, before, after, severity, critical, reason)

    if change.startswith("column_"):
        is_read = subject in read
        if change == "column_added":
            return diff(ADDITIVE, "a new column nobody reads")
        if not is_read:
            return diff(ADDITIVE, "a column the mapping does not read")
        if change == "column_dropped":
            return diff(BREAKING, "a column the mapping reads", critical=True)
        if change == "column_type":
            return diff(BREAKING, "a column the mapping reads: its values may no longer mean what the mapping "
                                  "expects", critical=True)
        if change == "column_nullability":
            if after == "nullable":
                return diff(BREAKING, "a column the mapping reads may now hold NULL")
            return diff(ADDITIVE, "a column the mapping reads now refuses NULL (narrower, harmless)")
        return diff(ADDITIVE, "a default only shapes future inserts; the mapping reads stored values")
    if change.startswith("index_"):
        return diff(ADDITIVE, "indexes change speed, not content")
    item = old or new
    columns = set(item.get("columns", []))
    if item["kind"] == "p":
        return diff(BREAKING, "the mapping relies on the primary key on id (legacy_id, keyset paging)")
    if item["kind"] == "f" and columns & parent_columns:
        return diff(BREAKING, "the mapping resolves parents through this foreign key")
    if item["kind"] == "f" and columns & read:
        return diff(BREAKING, "a reference on a column the mapping reads: a parent the mapping does not know?")
    if columns & read:
        return diff(ADDITIVE, "narrows what the source may hold; the mapping quarantines what it cannot take")
    return diff(ADDITIVE, "a constraint on columns the mapping does not read")


def _judge_target(spec: EntitySpec, side: str, table: str, change: str, subject: str, before, after,
                  old: dict | None, new: dict | None) -> Difference:
    written = target_written_columns(spec)

    def diff(severity: str, reason: str, critical: bool = False) -> Difference:
        return Difference(side, table, change, subject, before, after, severity, critical, reason)

    if change.startswith("column_"):
        is_written = subject in written
        if change in ("column_dropped", "column_type") and is_written:
            return diff(BREAKING, "a column the load writes", critical=True)
        if change == "column_added":
            return diff(BREAKING, "the load does not write it: the mapping must say what goes there")
        return diff(BREAKING, "the load writes this table as a whole")
    if change.startswith("index_"):
        if (old or new).get("unique"):
            return diff(BREAKING, "a unique index can refuse rows the load writes")
        return diff(ADDITIVE, "indexes change speed, not content")
    return diff(BREAKING, "a constraint on the table the load writes")


def _with_rename_hints(found: list[Difference]) -> list[Difference]:
    """A rename shows as a drop and an add; name the likely new column."""
    out = []
    for d in found:
        candidates = [a.subject for a in found if a.change == "column_added" and a.after == d.before]
        if d.change == "column_dropped" and candidates:
            d = Difference(d.side, d.table, d.change, d.subject, d.before, d.after, d.severity, d.critical,
                           f"{d.reason} (renamed to {' or '.join(candidates)}?)")
        out.append(d)
    return out


def unusable(spec: EntitySpec, side: str, current: dict) -> list[Difference]:
    """What makes a table unfit to be accepted at all: it is gone, or (source) it lacks a column
    the spec reads. Empty when it can be accepted."""
    table = current.get("table")
    if not current.get("exists", True):
        return [Difference(side, table, "table_missing", table, table, None, BREAKING, True,
                           "the mapping cannot read or write it")]
    if side == TARGET:
        return []
    have = current.get("columns", {})
    return [Difference(SOURCE, table, "column_dropped", name, None, None, BREAKING, True, "a column the mapping reads")
            for name in spec.source_columns if name not in have]


def state_of(differences: list[Difference], strictness: str) -> str:
    if any(d.halts(strictness) for d in differences):
        return BREAKING
    return ADDITIVE if differences else OK


def halt_message(entity: str, differences: list[Difference], strictness: str) -> str:
    """The error a halted run shows: every difference, column by column, and what to do next."""
    if state_of(differences, strictness) != BREAKING:
        return "\n".join([f"{entity}: additive schema drift (DBMIG_DRIFT_STRICTNESS={strictness}); recorded, "
                          f"the run goes on. Accept it with: dbmig drift accept --entity {entity}"]
                         + [f"  - warning: {d.describe()}" for d in differences])
    lines = [f"{entity}: schema drift — the schema differs from the accepted snapshot "
             f"(DBMIG_DRIFT_STRICTNESS={strictness}); {entity} halts before any write: nothing of it is written "
             "until the schema is accepted."]
    for d in differences:
        mark = "HALTS" if d.halts(strictness) else "warning"
        lines.append(f"  - {mark}: {d.describe()}")
    lines += [
        "What to do:",
        f"  1. fix the mapping (dbmig_pipeline/entities/{entity}.py), or undo the schema change;",
        f"  2. dbmig drift accept --entity {entity}",
        f"  3. backfill the affected range: dbmig migrate --entity {entity} --from YYYY-MM-DD --to YYYY-MM-DD --full",
        f"     (in the UI: asset {entity} → Materialize → partition range, run config full: true "
        "or tag dbmig/full=true)",
    ]
    return "\n".join(lines)
