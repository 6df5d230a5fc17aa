"""doctors transform: MAPPING.md section 3, "General" and "doctors"."""
from __future__ import annotations

import copy
import datetime as dt

import pandas as pd
import pytest

from dbmig_pipeline.entities.doctors import SPEC
from dbmig_pipeline_tests.unit.entity_batches import EntityBatches
from dbmig_pipeline.entities.spec import DATA_QUALITY

CREATED = dt.datetime(2023, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
UPDATED = dt.datetime(2024, 6, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
GOOD = {
    "id": 1,
    "created_at": CREATED,
    "updated_at": UPDATED,
    "office_id": 42,
    "first_name": "Ann",
    "last_name": "Lee",
    "email": "ann@clinic.example",
    "phone": "555.123.4567",
    "license_no": "LIC-1",
    "specialty": "ORTHO",
    "is_active": True,
}


_batches = EntityBatches(SPEC, GOOD)
batch, only_row = _batches.batch, _batches.only_row


def test_good_row_maps_every_column():
    assert only_row() == {
        "legacy_id": 1,
        "created_at": CREATED,
        "source_updated_at": UPDATED,
        "parent_legacy_office_id": 42,
        "given_name": "Ann",
        "family_name": "Lee",
        "email": "ann@clinic.example",
        "phone_e164": "+15551234567",
        "license_number": "LIC-1",
        "specialty": "orthodontist",
        "active": True,
    }


@pytest.mark.parametrize(
    ("code", "specialty"),
    [
        ("ORTHO", "orthodontist"),
        ("ortho", "orthodontist"),
        (" ortho ", "orthodontist"),
        ("\tOrThO\n", "orthodontist"),
        ("GP", "general_dentist"),
        ("Gp", "general_dentist"),
        ("\x0bgp\x0c", "general_dentist"),
        ("PEDO", "pediatric_dentist"),
        ("pedo", "pediatric_dentist"),
        ("OTHER", "other"),
        ("other", "other"),
        ("ENDO", "other"),
        ("G P", "other"),
        ("orthodont", "other"),
        ("\xa0XYZ\xa0", "other"),
    ],
)
def test_specialty_is_case_insensitive_and_unknown_codes_are_other(code, specialty):
    assert only_row(specialty=code)["specialty"] == specialty


@pytest.mark.parametrize("code", ["", "  ", "\t\n", "\x0b\x0c"])
def test_empty_specialty_is_quarantined_by_the_text_rule(code):
    result = SPEC.transform(batch({"specialty": code}))
    assert result.rows.empty
    [reject] = result.rejects.to_dict("records")
    assert reject["category"] == DATA_QUALITY
    assert "specialty" in reject["detail"]


def test_names_are_trimmed():
    row = only_row(first_name="\t Ann\n", last_name="\xa0Lee\x0c")
    assert (row["given_name"], row["family_name"]) == ("Ann", "Lee")


@pytest.mark.parametrize(
    ("override", "named", "not_named"),
    [
        ({"first_name": " "}, ["first_name"], ["last_name"]),
        ({"last_name": "\t"}, ["last_name"], ["first_name"]),
        ({"first_name": "", "last_name": "\n"}, ["first_name", "last_name"], []),
    ],
)
def test_empty_names_are_quarantined_naming_the_columns(override, named, not_named):
    result = SPEC.transform(batch(override))
    assert result.rows.empty
    [reject] = result.rejects.to_dict("records")
    assert reject["category"] == DATA_QUALITY
    for column in named:
        assert column in reject["detail"]
    for column in not_named:
        assert column not in reject["detail"]


@pytest.mark.parametrize(("raw", "expected"), [(" LIC-9\t", "LIC-9"), ("", None), ("  ", None), (None, None)])
def test_license_number_is_trimmed_and_empty_is_null(raw, expected):
    assert only_row(license_no=raw)["license_number"] == expected


def test_office_id_is_carried_for_the_loader():
    result = SPEC.transform(batch({"office_id": 7}, {"office_id": 8}))
    assert result.rows["parent_legacy_office_id"].tolist() == [7, 8]


def test_bad_contacts_warn_but_doctor_is_migrated():
    result = SPEC.transform(batch({"email": "ann.example", "phone": "555 1234"}))
    assert len(result.rows) == 1 and result.rejects.empty
    assert sorted(result.warnings["column"]) == ["email", "phone_e164"]


def test_rejected_row_carries_no_warnings():
    result = SPEC.transform(batch({"first_name": "", "email": "bad"}))
    assert result.warnings.empty
    assert len(result.rejects) == 1


def test_input_is_not_mutated():
    frame = batch({"specialty": " gp "})
    before = copy.deepcopy(frame)
    SPEC.transform(frame)
    pd.testing.assert_frame_equal(frame, before)
