"""Changes made to the legacy source between measurements.

`changes_per_table` spreads N changed rows over the six tables in proportion
to their sizes (at scale 1.0 about 42 % patients, 53 % orders, the rest
offices, doctors, jaws and system_messages). `apply_changes` picks the rows
at random (reproducibly: ordered by md5 of id and a salt; never one of the
few seed rows dated in the future, whose bump would move `updated_at`
backwards, which dbmig rightly refuses to apply as an older version) and changes one
column the mapping reads, so that every changed row's content hash changes
and the row stays valid:

| table | change |
|---|---|
| offices, doctors | `is_active = NOT is_active` |
| patients | `notes = coalesce(notes, '') || ' ~'` |
| orders | `submitted_at = coalesce(submitted_at, created_at) + 1 s` |
| jaws | `scan_url = coalesce(scan_url, '') || '#~'` |
| system_messages | `body = body || ' ~'` |

With `bump`, `updated_at = clock_timestamp()` as well (each row its own
instant, as if written by many transactions); without it the change is
silent: only the content hashes (baseline, reconcile) can find it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg2 import sql

from benchmarks.bench import SOURCE_DB, Bench
from dbmig_pipeline.entities import ENTITIES

CHANGES = {
    "offices": "is_active = NOT is_active",
    "doctors": "is_active = NOT is_active",
    "patients": "notes = coalesce(notes, '') || ' ~'",
    "orders": "submitted_at = coalesce(submitted_at, created_at) + interval '1 second'",
    "jaws": "scan_url = coalesce(scan_url, '') || '#~'",
    "system_messages": "body = body || ' ~'",
}


@dataclass(frozen=True)
class ChangeSet:
    rows: dict[str, int]
    #: source clock just before the first and just after the last change (bumped changes lie between)
    since: datetime
    until: datetime

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def changes_per_table(counts: dict[str, int], total: int) -> dict[str, int]:
    """`total` changed rows spread over the tables in proportion to their sizes (largest remainder)."""
    rows = sum(counts.values())
    if not rows or total <= 0:
        return {name: 0 for name in counts}
    total = min(total, rows)
    exact = {name: total * n / rows for name, n in counts.items()}
    plan = {name: int(v) for name, v in exact.items()}
    for name in sorted(exact, key=lambda k: exact[k] - plan[k], reverse=True)[: total - sum(plan.values())]:
        plan[name] += 1
    return plan


def apply_changes(bench: Bench, plan: dict[str, int], *, bump: bool, salt: str) -> ChangeSet:
    """Change `plan[table]` random rows of each table in one source transaction; returns what changed."""
    conn = bench.connect(SOURCE_DB, autocommit=False)
    changed: dict[str, int] = {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            since = cur.fetchone()[0]
            for spec in ENTITIES:
                n = plan.get(spec.name, 0)
                if not n:
                    changed[spec.name] = 0
                    continue
                setters = sql.SQL(CHANGES[spec.name] + (", updated_at = clock_timestamp()" if bump else ""))
                table = sql.Identifier(spec.source_schema, spec.source_table)
                cur.execute(
                    sql.SQL("UPDATE {table} SET {setters} WHERE id IN (SELECT id FROM {table} "
                            "WHERE updated_at IS NULL OR updated_at <= now() "
                            "ORDER BY md5(id::text || %(salt)s) LIMIT %(n)s)").format(
                        table=table, setters=setters),
                    {"salt": salt, "n": n},
                )
                changed[spec.name] = cur.rowcount
            cur.execute("SELECT clock_timestamp()")
            until = cur.fetchone()[0]
        conn.commit()
    finally:
        conn.close()
    return ChangeSet(changed, since, until)
