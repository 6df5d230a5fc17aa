"""Failed-run alerts: one audit row per failed entity, and an optional JSON webhook.

Invariant: an alert never carries a secret (passwords in URLs and DSNs are
masked, the webhook URL is never logged) and a webhook that fails is logged,
never raised: the audit row is the record, the webhook only a nudge.
"""
from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.settings import KEYWORD_PASSWORD, QUERY_PASSWORD

log = logging.getLogger(__name__)

OPERATION = "run_failure_alert"
_MAX_MESSAGE = 2000
_SECRETS = (
    # scheme://user:password@, to the last @ of the word: a password may hold an unencoded @
    (re.compile(r"(\w+://[^:/@\s]*:)\S*@"), r"\1***@"),
    (QUERY_PASSWORD, r"\1***"),  # ?password= / &sslpassword= of a URL
    (KEYWORD_PASSWORD, r"\1***"),  # libpq key=value DSNs
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class FailedStep:
    entity: str | None  # None: the run failed outside any step (e.g. its worker died)
    category: str  # technical, integrity, data_quality, …
    message: str


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    job: str
    partition_range: str | None
    steps: tuple[FailedStep, ...]

    def payload(self) -> dict:
        """The webhook body: what failed and why, masked."""
        data = asdict(self)
        data["steps"] = [{**s, "message": redact(s["message"])[:_MAX_MESSAGE]} for s in data["steps"]]
        return {"event": "dbmig.run_failure", **data}


def record_failure(dest: Engine, failure: RunFailure, *, operator: str = "dagster") -> int:
    """Write one audit row per failed step not yet recorded for this run; returns how many were new.

    Idempotent, so a sensor tick that is evaluated again adds nothing.
    """
    written = 0
    conn = dest.raw_connection()
    try:
        with conn.cursor() as cur:
            for step in failure.steps:
                cur.execute(
                    "SELECT 1 FROM dbmig.audit_log WHERE operation = %s AND run_id = %s"
                    " AND entity IS NOT DISTINCT FROM %s",
                    (OPERATION, failure.run_id, step.entity),
                )
                if cur.fetchone():
                    continue
                bk.audit(cur, OPERATION, entity=step.entity, run_id=failure.run_id, operator=operator,
                         details={"category": step.category, "job": failure.job,
                                  "partition_range": failure.partition_range,
                                  "message": redact(step.message)[:_MAX_MESSAGE]})
                written += 1
        conn.commit()
    finally:
        conn.close()
    return written


def describe_url(url: str) -> str:
    """Scheme and host only: webhook paths and queries often hold tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{':' + str(parts.port) if parts.port else ''}/…"


def post_alert(url: str, payload: dict, *, timeout: float = 5.0) -> str | None:
    """POST the payload as JSON; returns None on a 2xx answer, else what went wrong (already logged)."""
    request = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "dbmig-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        problem = type(exc).__name__ + (f": {exc.reason}" if isinstance(exc, urllib.error.URLError) else "")
    else:
        if 200 <= status < 300:
            return None
        problem = f"HTTP {status}"
    problem = f"alert webhook {describe_url(url)} failed: {redact(problem)}"
    log.warning(problem)
    return problem
