"""patients transform: MAPPING.md section 3, "General" and "patients"."""
from __future__ import annotations

import copy
import datetime as dt

import pandas as pd
import pytest

from dbmig_pipeline.entities.patients import SPEC
from dbmig_pipeline_tests.unit.entity_batches import EntityBatches
from dbmig_pipeline.entities.spec import BUSINESS_RULE, DATA_QUALITY

UTC = dt.timezone.utc
CREATED = dt.datetime(2023, 3, 1, 8, 0, tzinfo=UTC)
UPDATED = dt.datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
GOOD = {
    "id": 1,
    "created_at": CREATED,
    "updated_at": UPDATED,
    "doctor_id": 5,
    "first_name": "Maya",
    "last_name": "Ortiz",
    "birth_date": dt.date(1990, 7, 14),
    "gender": "F",
    "email": "maya@example.org",
    "phone": "5551234567",
    "status": 1,
    "notes": "prefers mornings",
}


_batches = EntityBatches(SPEC, GOOD)
batch, only_row = _batches.batch, _batches.only_row


def test_good_row_maps_every_column():
    assert only_row() == {
        "legacy_id": 1,
        "created_at": CREATED,
        "source_updated_at": UPDATED,
        "parent_legacy_doctor_id": 5,
        "given_name": "Maya",
        "family_name": "Ortiz",
        "date_of_birth": dt.date(1990, 7, 14),
        "sex": "female",
        "email": "maya@example.org",
        "phone_e164": "+15551234567",
        "notes": "prefers mornings",
        "status": "active",
    }


def test_date_of_birth_is_a_date_object():
    assert type(only_row()["date_of_birth"]) is dt.date


def test_unknown_birth_date_sentinel_is_null_without_warning():
    result = SPEC.transform(batch({"birth_date": dt.date(1900, 1, 1)}))
    assert result.rows.iloc[0]["date_of_birth"] is None
    assert result.warnings.empty


def test_unknown_birth_date_sentinel_is_null_without_warning_even_after_the_row_was_created():
    """Both rules of date_of_birth hold for a row created in 1899: the first one listed wins."""
    result = SPEC.transform(batch({"birth_date": dt.date(1900, 1, 1),
                                   "created_at": dt.datetime(1899, 6, 1, tzinfo=dt.timezone.utc)}))
    assert result.rows.iloc[0]["date_of_birth"] is None
    assert result.warnings.empty


def test_missing_birth_date_stays_null():
    result = SPEC.transform(batch({"birth_date": None}))
    assert result.rows.iloc[0]["date_of_birth"] is None
    assert result.warnings.empty


def test_birth_date_after_creation_is_null_with_warning():
    result = SPEC.transform(batch({"birth_date": dt.date(2023, 3, 2)}))
    assert result.rows.iloc[0]["date_of_birth"] is None
    [warning] = result.warnings.to_dict("records")
    assert warning["legacy_id"] == 1 and warning["column"] == "date_of_birth"
    assert "2023-03-02" in warning["detail"]


def test_birth_date_on_the_creation_date_is_kept():
    assert only_row(birth_date=dt.date(2023, 3, 1))["date_of_birth"] == dt.date(2023, 3, 1)


def test_creation_date_is_taken_in_utc_not_in_the_offset_of_the_timestamp():
    # 2024-01-01 23:30 at UTC-5 is 2024-01-02 04:30 UTC: a birth on 2024-01-02 is not after it
    late_evening_west = dt.datetime(2024, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    # 2024-01-02 00:30 at UTC+2 is 2024-01-01 22:30 UTC: a birth on 2024-01-02 is after it
    just_after_midnight_east = dt.datetime(2024, 1, 2, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    result = SPEC.transform(
        batch(
            {"created_at": late_evening_west, "birth_date": dt.date(2024, 1, 2)},
            {"created_at": just_after_midnight_east, "birth_date": dt.date(2024, 1, 2)},
            {"created_at": just_after_midnight_east, "birth_date": dt.date(2024, 1, 1)},
        )
    )
    assert result.rows["date_of_birth"].tolist() == [dt.date(2024, 1, 2), None, dt.date(2024, 1, 1)]
    assert result.warnings["legacy_id"].tolist() == [2]


def test_very_old_birth_dates_survive():
    assert only_row(birth_date=dt.date(1, 1, 1))["date_of_birth"] == dt.date(1, 1, 1)


@pytest.mark.parametrize(
    ("gender", "sex"),
    [
        ("M", "male"),
        ("m", "male"),
        (" M", "male"),
        ("F", "female"),
        ("f", "female"),
        ("\tF", "female"),
        ("U", "unknown"),
        ("X", "unknown"),
        (" ", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_sex_from_gender(gender, sex):
    assert only_row(gender=gender)["sex"] == sex


@pytest.mark.parametrize(
    ("code", "status"),
    [(0, "lead"), (1, "active"), (2, "in_treatment"), (3, "completed"), (9, "archived")],
)
def test_every_known_status(code, status):
    assert only_row(status=code)["status"] == status


@pytest.mark.parametrize("code", [4, 7, 8, -1, 10, 32767])
def test_unknown_status_is_quarantined_as_business_rule(code):
    result = SPEC.transform(batch({"status": code}))
    assert result.rows.empty
    [reject] = result.rejects.to_dict("records")
    assert reject["category"] == BUSINESS_RULE
    assert f"status {code} " in reject["detail"]


def test_status_reject_detail_reads_well():
    result = SPEC.transform(batch({"status": 7}))
    assert result.rejects.iloc[0]["detail"] == "status 7 is not a known patient status (0,1,2,3,9)"


def test_empty_name_wins_over_unknown_status():
    result = SPEC.transform(batch({"last_name": " \t", "status": 7}))
    [reject] = result.rejects.to_dict("records")
    assert reject["category"] == DATA_QUALITY
    assert "last_name" in reject["detail"]


def test_names_and_notes_are_trimmed():
    notes = "Ünïcødé 🦷 notes\nline two " * 1000
    row = only_row(first_name="\x0bMaya ", last_name="\u2003Ortiz\u2003", notes=f"\n\t{notes}\r\n")
    assert (row["given_name"], row["family_name"]) == ("Maya", "Ortiz")
    assert row["notes"] == notes.strip()


@pytest.mark.parametrize("notes", ["", "  ", "\n\r\t\x0b\x0c", None])
def test_empty_notes_are_null(notes):
    assert only_row(notes=notes)["notes"] is None


def test_quarantined_patient_carries_no_warnings():
    result = SPEC.transform(batch({"status": 5, "email": "a@b@c", "birth_date": dt.date(2099, 1, 1)}))
    assert len(result.rejects) == 1
    assert result.warnings.empty


def test_migrated_patient_carries_every_warning():
    result = SPEC.transform(batch({"email": "nobody", "phone": "n/a", "birth_date": dt.date(2099, 1, 1)}))
    assert sorted(result.warnings["column"]) == ["date_of_birth", "email", "phone_e164"]
    row = result.rows.iloc[0]
    assert row["email"] is None and row["phone_e164"] is None and row["date_of_birth"] is None


def test_mixed_rows_with_mixed_offsets():
    result = SPEC.transform(
        batch(
            {"created_at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=9)))},
            {"status": 3},
            {"status": 6},
        )
    )
    assert result.rows["legacy_id"].tolist() == [1, 2]
    assert result.rows["parent_legacy_doctor_id"].tolist() == [5, 5]
    assert result.rejects["legacy_id"].tolist() == [3]


def test_input_is_not_mutated():
    frame = batch({"birth_date": dt.date(1900, 1, 1), "first_name": " x "})
    before = copy.deepcopy(frame)
    SPEC.transform(frame)
    pd.testing.assert_frame_equal(frame, before)
