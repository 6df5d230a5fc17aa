"""system_messages → app.system_messages (MAPPING.md section 3, "system_messages").

Old rows have no `updated_at`, so this entity's cursor is nullable; the
transform copies the NULL through as `source_updated_at`.
"""
from __future__ import annotations

import pandas as pd

from dbmig_pipeline.entities import common
from dbmig_pipeline.entities.spec import DATA_QUALITY, EntitySpec, TargetColumn, TransformResult

#: legacy severity (lower-cased) → app.severity
SEVERITIES = {"info": "info", "warn": "warning", "error": "error"}


def transform(batch: pd.DataFrame) -> TransformResult:
    verdicts = common.Verdicts(batch)
    severity_codes = common.trimmed(batch["severity"])
    code = common.trimmed(batch["code"])
    body = common.trimmed(batch["body"])
    verdicts.reject_empty({"severity": severity_codes, "code": code, "body": body})

    severity = severity_codes.str.lower().map(SEVERITIES).astype(object)
    verdicts.reject(
        severity.isna(),
        DATA_QUALITY,
        lambda caught: "severity " + common.shown(severity_codes[caught]) + f" is not one of {', '.join(SEVERITIES)}",
    )
    # SQL NULL and JSON null both arrive as None; the target wants an object.
    context = batch["context"].map(lambda value: {} if value is None else value).astype(object)
    return verdicts.result(
        SPEC,
        {"severity": severity.where(severity.notna(), None), "code": code, "body": body, "context": context},
    )


SPEC = EntitySpec(
    name="system_messages",
    source_table="system_messages",
    source_columns=("id", "created_at", "updated_at", "severity", "code", "body", "context"),
    target_table="system_messages",
    target_columns=(
        TargetColumn("severity", "app.severity"),
        TargetColumn("code", "text"),
        TargetColumn("body", "text"),
        TargetColumn("context", "jsonb"),
    ),
    transform=transform,
    cursor_nullable=True,
    description="Application log messages; old rows carry no updated_at.",
)
