"""Keyed, deterministic pseudonyms for personal data on non-production targets.

Invariant: a masked batch keeps its shape and its validity, and no original
value of a PII column leaves the transform, not even quoted in a warning.
The same input always gives the same pseudonym under one key (joins,
re-runs and hash-skipping all agree); e-mails stay e-mails, phones stay
E.164, birth dates stay plausible (shifted at most 180 days, never after
the row's creation); NULL stays NULL. Pseudonyms are HMAC-SHA256 under a
secret key (DBMIG_MASK_KEY): without it nobody can rebuild them by hashing
guessed names, as they could a plain hash.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable
from datetime import date

import pandas as pd

from dbmig_pipeline.entities.spec import EntitySpec, TransformResult

EMAIL_DOMAIN = "example.invalid"  # RFC 2606: can never reach anybody
PHONE_PREFIX = "+1555"  # the North American fictional exchange
MAX_SHIFT_DAYS = 180
_CONSONANTS = "bdfghjklmnprstvz"
_VOWELS = "aeiou"
#: prefixes of free-text pseudonyms, by column
_TEXT_LABELS = {"notes": "Note", "license_number": "LIC"}


def digest(key: bytes, kind: str, value: str) -> bytes:
    """HMAC-SHA256 of `value`, separated by `kind` so an e-mail and a name that are equal still differ."""
    return hmac.new(key, kind.encode() + b"\x00" + value.encode("utf-8"), hashlib.sha256).digest()


def mask_email(key: bytes, value: str) -> str:
    return f"u_{digest(key, 'email', value).hex()[:16]}@{EMAIL_DOMAIN}"


def mask_phone(key: bytes, value: str) -> str:
    number = int.from_bytes(digest(key, "phone", value)[:8], "big") % 10**7
    return f"{PHONE_PREFIX}{number:07d}"


def mask_name(key: bytes, value: str) -> str:
    """Three consonant-vowel syllables, sometimes a closing consonant: `Kadomi`, `Zeluvan`."""
    d = digest(key, "name", value)
    letters = [_CONSONANTS[d[i] % 16] + _VOWELS[d[i + 1] % 5] for i in (0, 2, 4)]
    if d[6] % 2:
        letters.append(_CONSONANTS[d[7] % 16])
    return "".join(letters).capitalize()


def mask_text(key: bytes, value: str, label: str) -> str:
    return f"{label}-{digest(key, 'text', value).hex()[:16]}"


def shift_days(key: bytes, value: date) -> int:
    """A non-zero shift of at most MAX_SHIFT_DAYS either way, fixed per date and key."""
    d = digest(key, "date", value.isoformat())
    magnitude = 1 + int.from_bytes(d[:4], "big") % MAX_SHIFT_DAYS
    return magnitude if d[4] % 2 else -magnitude


def _per_unique(values: pd.Series, fn: Callable) -> pd.Series:
    """`fn` once per distinct non-null value, mapped back onto the column; NULL stays None."""
    present = values.notna()
    table = {value: fn(value) for value in pd.unique(values[present])}
    out = pd.Series([None] * len(values), index=values.index, dtype=object)
    out[present] = values[present].map(table)
    return out


_FIRST_DAY = pd.Timestamp("0001-01-01")


def _mask_dates(key: bytes, values: pd.Series, created_at: pd.Series) -> pd.Series:
    """Shift each date; where the shift would pass the row's creation day (UTC), shift backwards instead."""
    days = _per_unique(values, lambda v: shift_days(key, v))
    present = values.notna()
    if not present.any():
        return days
    original = pd.to_datetime(values[present])
    offset = pd.to_timedelta(days[present].astype("int64"), unit="D")
    created_on = pd.to_datetime(created_at[present], utc=True).dt.tz_localize(None).dt.normalize()
    shifted = original + offset
    shifted = shifted.where(shifted <= created_on, original - abs(offset))
    # never before the year 1, Python's first day (such dates are the source's BC ones: engine/pg_dates.py)
    shifted = shifted.where(shifted >= _FIRST_DAY, _FIRST_DAY)
    out = pd.Series([None] * len(values), index=values.index, dtype=object)
    out[present] = [ts.date() for ts in shifted]
    return out


def column_masker(spec: EntitySpec, column: str) -> Callable[[bytes, pd.DataFrame], pd.Series]:
    """How one PII column of `spec` is masked, chosen by its type and name; unknown kinds refuse."""
    sql_type = {c.name: c.sql_type for c in spec.target_columns}[column]
    if sql_type == "date":
        return lambda key, rows: _mask_dates(key, rows[column], rows["created_at"])
    if sql_type != "text":
        raise ValueError(f"{spec.name}.{column}: no masking rule for PII of type {sql_type}")
    if "email" in column:
        fn = mask_email
    elif column.startswith("phone"):
        fn = mask_phone
    elif column.endswith("_name"):
        fn = mask_name
    else:
        label = _TEXT_LABELS.get(column, column.capitalize())
        return lambda key, rows: _per_unique(rows[column], lambda v: mask_text(key, v, label))
    return lambda key, rows: _per_unique(rows[column], lambda v: fn(key, v))


def mask_result(result: TransformResult, spec: EntitySpec, key: bytes) -> TransformResult:
    """The batch with every PII column pseudonymised and PII warnings stripped of the values they quote."""
    if not spec.pii_columns:
        return result
    rows = result.rows.copy()
    for column in spec.pii_columns:
        rows[column] = column_masker(spec, column)(key, result.rows)
    warnings = result.warnings.copy()
    on_pii = warnings["column"].isin(spec.pii_columns)
    warnings.loc[on_pii, "detail"] = (
        warnings.loc[on_pii, "column"] + " broke a data-quality rule and was stored as NULL; "
        "the value is withheld because DBMIG_MASK_PII is on")
    return dataclasses.replace(result, rows=rows, warnings=warnings)
