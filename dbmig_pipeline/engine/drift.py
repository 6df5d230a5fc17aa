"""Schema fingerprints of the tables an entity reads and writes, and the
accepted snapshots they are compared with.

A fingerprint is what the mapping can depend on, read from the catalogs:
columns (type with modifiers, nullability, default), constraints and
indexes. Constraints and indexes are recorded by definition, never by name
or OID, so dropping and re-creating them unchanged (as bulk loaders do) is
no drift. Invariant: an entity's snapshot changes only by an explicit
acceptance (`accept`) or on first contact, and every acceptance, halt and
warning leaves a row in `dbmig.audit_log`.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.drift_classify import (
    BREAKING,
    SOURCE,
    TARGET,
    Difference,
    diff_tables,
    halt_message,
    state_of,
    unusable,
)
from dbmig_pipeline.entities.spec import EntitySpec

#: who accepted a snapshot taken on first contact
INITIAL = "initial"

_INDEX_NAME = re.compile(r'^CREATE (UNIQUE )?INDEX (?:"(?:[^"]|"")+"|\S+) ON ')


@contextmanager
def _qualified_names(cur) -> Iterator[None]:
    """With only pg_catalog on the search path, format_type and pg_get_*def qualify every
    other name, so a fingerprint does not depend on the session that reads it."""
    cur.execute("SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', true)")
    previous = cur.fetchone()[0]
    try:
        yield
    finally:
        cur.execute("SELECT set_config('search_path', %s, true)", (previous,))


def fingerprint(cur, schema: str, table: str) -> dict:
    """The JSON fingerprint of one table as it is now (`exists` false when it is gone)."""
    name = f"{schema}.{table}"
    with _qualified_names(cur):
        cur.execute(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            (schema, table),
        )
        row = cur.fetchone()
        if row is None:
            return {"table": name, "exists": False}
        oid = row[0]
        cur.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
              FROM pg_attribute a
              LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
            """,
            (oid,),
        )
        columns = {n: {"type": t, "not_null": nn, "default": d} for n, t, nn, d in cur.fetchall()}
        cur.execute(
            """
            SELECT c.contype::text, pg_get_constraintdef(c.oid),
                   ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(num, pos)
                           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.pos)
              FROM pg_constraint c
             WHERE c.conrelid = %s AND c.contype IN ('p', 'u', 'f', 'c', 'x')
            """,
            (oid,),
        )
        constraints = sorted(
            ({"kind": kind, "definition": text, "columns": list(cols)} for kind, text, cols in cur.fetchall()),
            key=lambda c: (c["kind"], c["definition"]),
        )
        cur.execute(
            """
            SELECT pg_get_indexdef(i.indexrelid), i.indisunique
              FROM pg_index i
             WHERE i.indrelid = %s
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
            """,
            (oid,),
        )
        indexes = sorted(
            ({"definition": _INDEX_NAME.sub(r"CREATE \1INDEX ON ", d), "unique": u} for d, u in cur.fetchall()),
            key=lambda i: i["definition"],
        )
    return {"table": name, "exists": True, "columns": columns, "constraints": constraints, "indexes": indexes}


def digest(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def current_fingerprints(src_cur, dst_cur, spec: EntitySpec) -> dict[str, dict]:
    return {SOURCE: fingerprint(src_cur, spec.source_schema, spec.source_table),
            TARGET: fingerprint(dst_cur, spec.target_schema, spec.target_table)}


@dataclass(frozen=True)
class Snapshot:
    fingerprint: dict
    digest: str
    accepted_at: object
    accepted_by: str


def accepted_snapshots(dst_cur, entity: str) -> dict[str, Snapshot]:
    dst_cur.execute(
        "SELECT side, fingerprint, digest, accepted_at, accepted_by FROM dbmig.schema_snapshots WHERE entity = %s",
        (entity,),
    )
    return {side: Snapshot(fp, d, at, by) for side, fp, d, at, by in dst_cur.fetchall()}


def _save(dst_cur, entity: str, side: str, fp: dict, by: str, *, replace: bool) -> None:
    conflict = ("DO UPDATE SET fingerprint = EXCLUDED.fingerprint, digest = EXCLUDED.digest, "
                "accepted_at = now(), accepted_by = EXCLUDED.accepted_by") if replace else "DO NOTHING"
    dst_cur.execute(
        "INSERT INTO dbmig.schema_snapshots (entity, side, fingerprint, digest, accepted_by) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (entity, side) " + conflict,
        (entity, side, json.dumps(fp), digest(fp), by),
    )


@dataclass
class DriftReport:
    """One entity compared with its accepted snapshots."""

    entity: str
    strictness: str
    differences: list[Difference] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # current, per side
    accepted: dict[str, dict] = field(default_factory=dict)  # digest, accepted_at, accepted_by per side
    first_contact: list[str] = field(default_factory=list)  # sides accepted just now

    @property
    def state(self) -> str:
        return state_of(self.differences, self.strictness)

    @property
    def halts(self) -> bool:
        return self.state == BREAKING

    @property
    def key(self) -> str:
        """Identifies this drift: the current digests of both sides."""
        return f"{self.digests.get(SOURCE, '-')}/{self.digests.get(TARGET, '-')}"

    def message(self) -> str:
        return halt_message(self.entity, self.differences, self.strictness)

    def as_dict(self) -> dict:
        return {"entity": self.entity, "state": self.state, "strictness": self.strictness,
                "differences": [d.as_dict() for d in self.differences],
                "digests": self.digests, "accepted": self.accepted}


def inspect(src_cur, dst_cur, spec: EntitySpec, strictness: str, *, operator: str,
            run_id: str | None = None) -> DriftReport:
    """Compare both sides with their snapshots; a side without one is accepted as it is (first contact),
    unless the source does not even offer what the spec reads."""
    current = current_fingerprints(src_cur, dst_cur, spec)
    snapshots = accepted_snapshots(dst_cur, spec.name)
    report = DriftReport(spec.name, strictness, digests={side: digest(fp) for side, fp in current.items()})
    for side in (SOURCE, TARGET):
        snap = snapshots.get(side)
        if snap is not None:
            report.differences += diff_tables(spec, side, snap.fingerprint, current[side])
            report.accepted[side] = {"digest": snap.digest, "accepted_at": snap.accepted_at,
                                     "accepted_by": snap.accepted_by}
            continue
        problems = unusable(spec, side, current[side])
        if problems:
            report.differences += problems
            continue
        _save(dst_cur, spec.name, side, current[side], INITIAL, replace=False)
        bk.audit(dst_cur, "drift_accept", entity=spec.name, run_id=run_id, operator=operator,
                 details={"side": side, "digest": report.digests[side], "accepted_by": INITIAL,
                          "first_contact": True})
        report.first_contact.append(side)
    return report


def accept(src_cur, dst_cur, spec: EntitySpec, *, by: str, run_id: str | None = None) -> DriftReport:
    """Make the current schema of both sides the accepted one; returns what was accepted (the differences
    it had). Refused while the source lacks a column the spec reads: fix the mapping first."""
    current = current_fingerprints(src_cur, dst_cur, spec)
    missing = unusable(spec, SOURCE, current[SOURCE]) + unusable(spec, TARGET, current[TARGET])
    if missing:
        raise DriftAcceptRefused(
            f"{spec.name}: not accepted: " + "; ".join(d.describe() for d in missing)
            + f". Fix the mapping (dbmig_pipeline/entities/{spec.name}.py) so it reads what the source offers, "
            "then accept again."
        )
    before = inspect(src_cur, dst_cur, spec, "normal", operator=by, run_id=run_id)
    for side in (SOURCE, TARGET):
        if side in before.first_contact:
            continue
        _save(dst_cur, spec.name, side, current[side], by, replace=True)
    bk.audit(dst_cur, "drift_accept", entity=spec.name, run_id=run_id, operator=by,
             details={"accepted_by": by, "digests": before.digests,
                      "previous": {s: a["digest"] for s, a in before.accepted.items()},
                      "differences": [d.describe() for d in before.differences]})
    return before


class DriftAcceptRefused(ValueError):
    """The current schema cannot be accepted as it is; the message says why."""


def record(dst_cur, operation: str, report: DriftReport, *, operator: str, run_id: str | None = None) -> None:
    """An audit row for a drift event: drift_halt, drift_warning or drift_detected."""
    bk.audit(dst_cur, operation, entity=report.entity, run_id=run_id, operator=operator,
             details={"state": report.state, "strictness": report.strictness, "key": report.key,
                      "differences": [d.describe() for d in report.differences]})


def record_warning_once(dst_cur, report: DriftReport, *, operator: str, run_id: str | None = None) -> bool:
    """Additive drift is recorded once per distinct schema, not at every run."""
    dst_cur.execute(
        "SELECT EXISTS (SELECT 1 FROM dbmig.audit_log WHERE operation = 'drift_warning' AND entity = %s "
        "AND details->>'key' = %s)",
        (report.entity, report.key),
    )
    if dst_cur.fetchone()[0]:
        return False
    record(dst_cur, "drift_warning", report, operator=operator, run_id=run_id)
    return True
