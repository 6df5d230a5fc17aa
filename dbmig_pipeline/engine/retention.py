"""Retention of the audit log: batch-level detail goes, per-run summaries stay.

Invariant: rows are removed only through `dbmig.prune_audit_detail` (control
schema version 2), the one path the append-only trigger and the writer's grants
leave open, and only rows of level 'detail'; every prune is itself recorded as
a summary row ('audit_pruned') in the same transaction.
"""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import bookkeeping as bk

PRUNE_OPERATION = "audit_pruned"
_RETENTION = re.compile(r"\s*(\d+)\s*([dh])\s*", re.IGNORECASE)
_UNITS = {"d": "days", "h": "hours"}
_LONGEST = timedelta(days=36500)


def parse_retention(text: str) -> timedelta:
    """'90d' or '36h' as a timedelta; a ValueError saying what is accepted for anything else
    (also for 0: a retention of nothing is more likely a typo than a wish)."""
    match = _RETENTION.fullmatch(text or "")
    retention = timedelta(**{_UNITS[match[2].lower()]: int(match[1])}) if match and len(match[1]) < 8 else None
    if retention is None or not timedelta(0) < retention <= _LONGEST:
        raise ValueError(f"takes a whole number of days or hours like 90d or 36h (from 1h to 36500d), got {text!r}")
    return retention


def prune_audit_detail(dest: Engine, older_than: timedelta, *, label: str, operator: str,
                       run_id: str | None = None) -> int:
    """Remove audit detail rows older than `older_than`; returns how many went."""
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT dbmig.prune_audit_detail(%s)", (older_than,))
            removed = cur.fetchone()[0]
            bk.audit(cur, PRUNE_OPERATION, run_id=run_id, operator=operator,
                     details={"older_than": label, "removed": removed})
        conn.commit()
        return removed
    finally:
        conn.close()
