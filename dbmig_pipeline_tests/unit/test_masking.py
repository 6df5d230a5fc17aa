"""PII pseudonyms: deterministic under one key, different under another, valid, NULL-preserving."""
import datetime as dt
import re

import pandas as pd
import pytest

from dbmig_pipeline.engine import masking
from dbmig_pipeline.entities import ENTITIES, get_entity

KEY = b"unit-test-key-0123456789"
OTHER_KEY = b"another-key-9876543210xx"
E164 = re.compile(r"\+1555\d{7}")
EMAIL = re.compile(r"u_[0-9a-f]{16}@example\.invalid")


def test_pseudonyms_are_deterministic_and_keyed():
    for fn in (masking.mask_email, masking.mask_phone, masking.mask_name):
        assert fn(KEY, "ann.lee@example.com") == fn(KEY, "ann.lee@example.com")
        assert fn(KEY, "ann.lee@example.com") != fn(OTHER_KEY, "ann.lee@example.com")
        assert fn(KEY, "ann.lee@example.com") != fn(KEY, "bob.kim@example.com")
    assert masking.mask_text(KEY, "note", "Note") != masking.mask_text(OTHER_KEY, "note", "Note")


def test_pseudonyms_keep_their_formats():
    values = [f"person{i}@clinic.example" for i in range(300)]
    emails = {masking.mask_email(KEY, v) for v in values}
    assert len(emails) == 300 and all(EMAIL.fullmatch(e) and e.count("@") == 1 for e in emails)
    phones = [masking.mask_phone(KEY, f"+1212555{i:04d}") for i in range(300)]
    assert all(E164.fullmatch(p) for p in phones)
    names = [masking.mask_name(KEY, v) for v in values]
    assert all(re.fullmatch(r"[A-Z][a-z]{5,6}", n) for n in names)
    assert all(re.search(r"[aeiou]", n) for n in names)  # pronounceable: consonant-vowel syllables
    assert len(set(names)) > 290


def test_birth_dates_shift_at_most_180_days_and_never_after_creation():
    births = pd.Series([dt.date(1980, 1, 1) + dt.timedelta(days=37 * i) for i in range(400)] + [None], dtype=object)
    # created the day after birth: a forward shift would pass it, so it must go backwards
    created = pd.Series([pd.Timestamp(b, tz="UTC") + pd.Timedelta(days=1) if b else pd.Timestamp("2020-01-01", tz="UTC")
                         for b in births])
    masked = masking._mask_dates(KEY, births, created)
    assert masked.iloc[-1] is None
    shifts = [(m - b).days for b, m in zip(births[:-1], masked[:-1])]
    assert all(1 <= abs(s) <= masking.MAX_SHIFT_DAYS for s in shifts)
    assert all(m <= c.date() for m, c in zip(masked[:-1], created[:-1]))
    assert all(isinstance(m, dt.date) for m in masked[:-1])
    assert list(masking._mask_dates(KEY, births, created)) == list(masked)


def _patients_batch() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3], "created_at": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"], utc=True),
        "updated_at": pd.to_datetime(["2024-01-01"] * 3, utc=True), "doctor_id": [7, 7, 7],
        "first_name": ["Ann", " Ann ", "Bob"], "last_name": ["Lee", "Lee", "Kim"],
        "birth_date": [dt.date(1990, 5, 5), dt.date(1990, 5, 5), None], "gender": ["F", "F", None],
        "email": ["Ann@x.com", "no-at-sign", None], "phone": ["(555) 123-4567", "12", None],
        "status": [1, 1, 1], "notes": ["allergic to latex", None, "calls after 5pm"],
    })


def test_a_masked_batch_keeps_shape_nulls_and_joins_and_quotes_no_pii():
    spec = get_entity("patients")
    plain = spec.transform(_patients_batch())
    masked = masking.mask_result(plain, spec, KEY)
    rows, originals = masked.rows, plain.rows
    assert list(rows.columns) == list(originals.columns) and len(rows) == len(originals)
    for column in ("legacy_id", "created_at", "status", "sex", "parent_legacy_doctor_id"):
        assert rows[column].tolist() == originals[column].tolist()
    for column in spec.pii_columns:
        assert (rows[column].isna() == originals[column].isna()).all(), column
        kept = set(rows[column].dropna()) & set(originals[column].dropna())
        assert not kept, f"{column} kept {kept}"
    assert rows["given_name"][0] == rows["given_name"][1]  # same person, same pseudonym
    assert rows["date_of_birth"][0] == rows["date_of_birth"][1]
    assert EMAIL.fullmatch(rows["email"][0]) and E164.fullmatch(rows["phone_e164"][0])
    assert rows["notes"][0].startswith("Note-")
    details = " ".join(masked.warnings["detail"])
    assert len(masked.warnings) == 2 and "no-at-sign" not in details and "'12'" not in details
    assert "withheld" in details


def test_every_pii_column_of_every_entity_has_a_rule():
    for spec in ENTITIES:
        for column in spec.pii_columns:
            assert callable(masking.column_masker(spec, column))


def test_a_pii_column_of_a_type_without_a_rule_is_refused():
    spec = get_entity("orders")
    with pytest.raises(ValueError, match="no masking rule"):
        masking.column_masker(spec, "price_cents")
