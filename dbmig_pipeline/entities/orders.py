"""orders → app.orders (MAPPING.md section 3, "orders").

Rules run in contract order, so a row breaking several is quarantined for
the first: empty text, unknown status, negative price, negative aligner
count, bad arches. `order_number` collisions are not judged here: they span
batches and are the loader's integrity check (MAPPING.md section 4).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dbmig_pipeline.engine import json_exact
from dbmig_pipeline.entities import common
from dbmig_pipeline.entities.spec import (
    BUSINESS_RULE,
    DATA_QUALITY,
    EntitySpec,
    ParentRef,
    TargetColumn,
    TransformResult,
)

STATUSES = ("draft", "submitted", "in_production", "shipped", "delivered", "cancelled")
ARCHES = ("upper", "lower", "both")
#: `details` keys promoted to their own columns, hence left out of `extra`
PROMOTED_KEYS = ("arches", "rush")
_ABSENT = object()


def _arches_text(details: object) -> object:
    """`details->>'arches'` as PostgreSQL renders it: the string itself, other JSON as JSON text, None when missing."""
    value = details.get("arches", _ABSENT) if isinstance(details, dict) else _ABSENT
    if value is _ABSENT or value is None:
        return None
    return value if isinstance(value, str) else json_exact.text(value)


def _is_rush(details: object) -> bool:
    """True only for JSON true: not the string "true", not 1."""
    return isinstance(details, dict) and details.get("rush") is True


def _extra(details: object) -> object:
    """`details` without the promoted keys; a non-object value is kept as it is, JSON null becomes {}."""
    if details is None:
        return {}
    if not isinstance(details, dict):
        return details
    return {key: value for key, value in details.items() if key not in PROMOTED_KEYS}


def price_cents(prices: pd.Series) -> pd.Series:
    """price × 100 as int64; exact because numeric(10,2) × 100 stays far below 2**53."""
    return pd.Series(np.rint(prices.astype(float).to_numpy() * 100), index=prices.index).astype("int64")


def transform(batch: pd.DataFrame) -> TransformResult:
    verdicts = common.Verdicts(batch)
    order_number = common.trimmed(batch["order_no"]).str.upper()
    status = common.trimmed(batch["status"])
    currency = common.trimmed(batch["currency"])
    verdicts.reject_empty({"order_no": order_number, "status": status, "currency": currency})

    verdicts.reject(
        ~status.isin(STATUSES),
        DATA_QUALITY,
        lambda caught: "status " + common.shown(status[caught]) + f" is not a known order status ({', '.join(STATUSES)})",
    )
    cents = price_cents(batch["price"])
    verdicts.reject(cents < 0, BUSINESS_RULE, lambda caught: "price " + batch["price"][caught].astype(str) + " is negative")
    aligner_count = batch["aligner_count"].astype("Int64")
    verdicts.reject(
        aligner_count < 0, BUSINESS_RULE,
        lambda caught: "aligner_count " + aligner_count[caught].astype(str) + " is negative",
    )
    unreadable = batch["details"].map(lambda d: isinstance(d, json_exact.Unparsed)).astype(bool)
    verdicts.reject(
        unreadable,
        DATA_QUALITY,
        lambda caught: "details nests " + batch["details"][caught].map(lambda d: f"{d.depth:,}")
        + f" levels deep, deeper than dbmig reads ({json_exact.MAX_DEPTH}): arches and rush cannot be taken"
        " out of it; flatten it in the source",
    )
    arches_text = batch["details"].map(_arches_text)
    arches = common.trimmed(arches_text)
    verdicts.reject(
        arches.notna() & ~arches.isin(ARCHES),
        DATA_QUALITY,
        lambda caught: "details.arches " + common.shown(arches_text[caught]) + f" is not one of {', '.join(ARCHES)}",
    )

    return verdicts.result(
        SPEC,
        {
            "order_number": order_number,
            "status": status,
            "aligner_count": aligner_count,
            "price_cents": cents,
            "currency": currency,
            "arches": arches,
            "is_rush": batch["details"].map(_is_rush).astype(bool),
            "extra": batch["details"].map(_extra).astype(object),
            "submitted_at": batch["submitted_at"],
            "shipped_at": batch["shipped_at"],
        },
    )


SPEC = EntitySpec(
    name="orders",
    source_table="orders",
    source_columns=(
        "id", "created_at", "updated_at", "patient_id", "order_no", "status", "aligner_count",
        "price", "currency", "details", "submitted_at", "shipped_at",
    ),
    target_table="orders",
    target_columns=(
        TargetColumn("order_number", "text"),
        TargetColumn("status", "app.order_status"),
        TargetColumn("aligner_count", "integer"),
        TargetColumn("price_cents", "bigint"),
        TargetColumn("currency", "char(3)"),
        TargetColumn("arches", "text"),
        TargetColumn("is_rush", "boolean"),
        TargetColumn("extra", "jsonb"),
        TargetColumn("submitted_at", "timestamptz"),
        TargetColumn("shipped_at", "timestamptz"),
    ),
    transform=transform,
    parents=(ParentRef(entity="patients", source_column="patient_id", target_column="patient_id"),),
    copied_times=(("submitted_at", "submitted_at"), ("shipped_at", "shipped_at")),
    unique_keys=("order_number",),
    description="Aligner orders, each for one patient.",
)
