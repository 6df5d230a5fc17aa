"""offices transform: MAPPING.md section 3, "General" and "offices"."""
from __future__ import annotations

import copy
import datetime as dt

import pandas as pd
import pytest

from dbmig_pipeline.entities.offices import SPEC
from dbmig_pipeline_tests.unit.entity_batches import EntityBatches
from dbmig_pipeline.entities.spec import DATA_QUALITY

CREATED = dt.datetime(2023, 3, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
UPDATED = dt.datetime(2024, 6, 1, 9, 30, tzinfo=dt.timezone.utc)
GOOD = {
    "id": 1,
    "created_at": CREATED,
    "updated_at": UPDATED,
    "name": "Smile Clinic",
    "address1": "1 Main St",
    "address2": None,
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "US",
    "phone": "(555) 123-4567",
    "email": "desk@smile.example",
    "is_active": True,
}


_batches = EntityBatches(SPEC, GOOD)
batch, only_row = _batches.batch, _batches.only_row


def test_good_row_maps_every_column():
    row = only_row()
    assert row == {
        "legacy_id": 1,
        "created_at": CREATED,
        "source_updated_at": UPDATED,
        "display_name": "Smile Clinic",
        "address": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postal_code": "62701", "country": "US"},
        "phone_e164": "+15551234567",
        "email": "desk@smile.example",
        "active": True,
    }
    assert list(SPEC.transform(batch({})).rows.columns) == [
        "legacy_id", "created_at", "source_updated_at", "display_name", "address", "phone_e164", "email", "active"
    ]


@pytest.mark.parametrize("name", ["  Smile Clinic ", "\tSmile Clinic\n", "\x0b\x0cSmile Clinic\r\n", "\xa0Smile Clinic\u3000"])
def test_display_name_is_trimmed_of_all_whitespace(name):
    assert only_row(name=name)["display_name"] == "Smile Clinic"


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "\x0b\x0c\xa0"])
def test_empty_name_is_quarantined_as_data_quality(name):
    result = SPEC.transform(batch({"name": name}))
    assert result.rows.empty
    [reject] = result.rejects.to_dict("records")
    assert reject["legacy_id"] == 1
    assert reject["category"] == DATA_QUALITY
    assert "name" in reject["detail"]


def test_address_keys_are_renamed_trimmed_and_empty_ones_left_out():
    row = only_row(
        address1="\t1 Main St ",
        address2="   ",
        city="",
        state=" IL\n",
        zip=None,
        country="US",
    )
    assert row["address"] == {"line1": "1 Main St", "region": "IL", "country": "US"}


def test_address_with_everything_empty_is_an_empty_object():
    row = only_row(address1=None, address2="", city=" ", state="\t", zip="\x0c", country="  ")
    assert row["address"] == {}


def test_all_address_keys():
    row = only_row(address1="a", address2="b", city="c", state="d", zip="e", country="CA")
    assert row["address"] == {"line1": "a", "line2": "b", "city": "c", "region": "d", "postal_code": "e", "country": "CA"}


@pytest.mark.parametrize("active", [True, False])
def test_active_copies_is_active(active):
    assert only_row(is_active=active)["active"] is active


def test_email_and_phone_are_normalised():
    row = only_row(email="  Desk@Smile.EXAMPLE\t", phone="+1 555 123 4567")
    assert row["email"] == "desk@smile.example"
    assert row["phone_e164"] == "+15551234567"


def test_bad_email_and_phone_are_dropped_with_warnings_but_row_migrated():
    result = SPEC.transform(batch({"email": "desk@@smile", "phone": "12345"}))
    assert result.rejects.empty
    row = result.rows.iloc[0]
    assert row["email"] is None and row["phone_e164"] is None
    warnings = result.warnings.set_index("column")["detail"]
    assert set(result.warnings["legacy_id"]) == {1}
    assert "desk@@smile" in warnings["email"]
    assert "12345" in warnings["phone_e164"]


def test_empty_email_and_phone_are_null_silently():
    result = SPEC.transform(batch({"email": " ", "phone": ""}))
    assert result.warnings.empty
    assert result.rows.iloc[0]["email"] is None and result.rows.iloc[0]["phone_e164"] is None


def test_each_row_lands_in_exactly_one_place():
    result = SPEC.transform(batch({}, {"name": " "}, {"email": "x"}))
    assert result.rows["legacy_id"].tolist() == [1, 3]
    assert result.rejects["legacy_id"].tolist() == [2]
    assert result.warnings["legacy_id"].tolist() == [3]


def test_input_is_not_mutated():
    frame = batch({"name": " a ", "email": " X@Y.Z "})
    before = copy.deepcopy(frame)
    SPEC.transform(frame)
    pd.testing.assert_frame_equal(frame, before)
