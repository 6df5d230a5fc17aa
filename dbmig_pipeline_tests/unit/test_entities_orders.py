"""orders transform: MAPPING.md section 3, "General" and "orders"."""
from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from dbmig_pipeline.entities.orders import SPEC
from dbmig_pipeline_tests.unit.entity_batches import EntityBatches
from dbmig_pipeline.entities.spec import BUSINESS_RULE, DATA_QUALITY

UTC = dt.timezone.utc
CREATED = dt.datetime(2023, 3, 1, 8, 0, tzinfo=UTC)
UPDATED = dt.datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
SUBMITTED = dt.datetime(2023, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
GOOD = {
    "id": 1,
    "created_at": CREATED,
    "updated_at": UPDATED,
    "patient_id": 9,
    "order_no": "AB-1",
    "status": "submitted",
    "aligner_count": 20,
    "price": Decimal("1999.99"),
    "currency": "USD",
    "details": {"arches": "both", "rush": True, "note": "x"},
    "submitted_at": SUBMITTED,
    "shipped_at": None,
}
STATUSES = ["draft", "submitted", "in_production", "shipped", "delivered", "cancelled"]


_batches = EntityBatches(SPEC, GOOD)
batch, only_row, only_reject = _batches.batch, _batches.only_row, _batches.only_reject


def test_good_row_maps_every_column():
    assert only_row() == {
        "legacy_id": 1,
        "created_at": CREATED,
        "source_updated_at": UPDATED,
        "parent_legacy_patient_id": 9,
        "order_number": "AB-1",
        "status": "submitted",
        "aligner_count": 20,
        "price_cents": 199999,
        "currency": "USD",
        "arches": "both",
        "is_rush": True,
        "extra": {"note": "x"},
        "submitted_at": SUBMITTED,
        "shipped_at": None,
    }


# --- order_number -------------------------------------------------------------


@pytest.mark.parametrize(("raw", "number"), [(" ab-1 ", "AB-1"), ("\tAb-1\n", "AB-1"), ("\x0bab-1\x0c", "AB-1")])
def test_order_number_is_trimmed_and_upper_cased(raw, number):
    assert only_row(order_no=raw)["order_number"] == number


@pytest.mark.parametrize("raw", ["", "  ", "\t\r\n"])
def test_empty_order_number_is_quarantined(raw):
    reject = only_reject(order_no=raw)
    assert reject["category"] == DATA_QUALITY
    assert "order_no" in reject["detail"]


# --- status and currency ------------------------------------------------------


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_passes_through(status):
    assert only_row(status=f" {status}\t")["status"] == status


@pytest.mark.parametrize("status", ["Shipped", "SHIPPED", "DRAFT", "ship", "in production", "returned"])
def test_status_outside_the_set_or_in_other_case_is_quarantined(status):
    reject = only_reject(status=status)
    assert reject["category"] == DATA_QUALITY
    assert status in reject["detail"] and "status" in reject["detail"]


@pytest.mark.parametrize("status", ["", " ", "\x0c"])
def test_empty_status_is_quarantined_by_the_text_rule(status):
    reject = only_reject(status=status)
    assert reject["category"] == DATA_QUALITY
    assert "status empty" in reject["detail"]


def test_currency_is_trimmed_without_case_change():
    assert only_row(currency=" usd")["currency"] == "usd"
    assert only_row(currency="EU ")["currency"] == "EU"


@pytest.mark.parametrize("currency", ["   ", "\t\n "])
def test_empty_currency_is_quarantined(currency):
    reject = only_reject(currency=currency)
    assert reject["category"] == DATA_QUALITY
    assert "currency" in reject["detail"]


# --- price and aligner_count ------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "cents"),
    [
        ("0.29", 29),
        ("0.57", 57),
        ("1.15", 115),
        ("4.35", 435),
        ("0.00", 0),
        ("0.01", 1),
        ("12345678.91", 1234567891),
        ("99999999.99", 9999999999),
        ("10", 1000),
    ],
)
def test_price_cents_is_exact(price, cents):
    value = only_row(price=Decimal(price))["price_cents"]
    assert value == cents
    assert int(value) == value


def test_price_cents_column_is_int64():
    assert SPEC.transform(batch({}, {"price": Decimal("0.29")})).rows["price_cents"].dtype == "int64"


@pytest.mark.parametrize("price", ["-0.01", "-5.00", "-99999999.99"])
def test_negative_price_is_quarantined_as_business_rule(price):
    reject = only_reject(price=Decimal(price))
    assert reject["category"] == BUSINESS_RULE
    assert "price" in reject["detail"] and price in reject["detail"]


@pytest.mark.parametrize(("count", "expected"), [(0, 0), (1, 1), (None, None)])
def test_aligner_count_is_copied(count, expected):
    value = only_row(aligner_count=count)["aligner_count"]
    assert (value is pd.NA or value is None) if expected is None else value == expected


def test_aligner_count_column_stays_integer_with_nulls():
    rows = SPEC.transform(batch({"aligner_count": None}, {"aligner_count": 3})).rows
    assert str(rows["aligner_count"].dtype) == "Int64"
    assert rows["aligner_count"].tolist()[1] == 3


@pytest.mark.parametrize("count", [-1, -30])
def test_negative_aligner_count_is_quarantined_as_business_rule(count):
    reject = only_reject(aligner_count=count)
    assert reject["category"] == BUSINESS_RULE
    assert f"aligner_count {count}" in reject["detail"]


# --- details: arches, rush, extra ----------------------------------------------------


@pytest.mark.parametrize(
    ("details", "arches"),
    [
        ({}, None),
        ({"arches": None}, None),
        ({"arches": ""}, None),
        ({"arches": " \t"}, None),
        ({"arches": "upper"}, "upper"),
        ({"arches": "lower"}, "lower"),
        ({"arches": "both"}, "both"),
        ({"arches": " both\n"}, "both"),
        ({"arches": "\x0bupper\x0c"}, "upper"),
    ],
)
def test_arches(details, arches):
    assert only_row(details=details)["arches"] == arches


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("UPPER", "UPPER"),
        ("Lower", "Lower"),
        ("uppers", "uppers"),
        ("upper,lower", "upper,lower"),
        (5, "5"),
        (True, "true"),
        (["upper"], '["upper"]'),
        ({"a": 1}, '{"a": 1}'),
    ],
)
def test_bad_arches_are_quarantined_as_data_quality(value, shown):
    reject = only_reject(details={"arches": value})
    assert reject["category"] == DATA_QUALITY
    assert "arches" in reject["detail"] and shown in reject["detail"]


@pytest.mark.parametrize(
    ("details", "rush"),
    [
        ({"rush": True}, True),
        ({"rush": "true"}, False),
        ({"rush": 1}, False),
        ({"rush": 1.0}, False),
        ({"rush": False}, False),
        ({"rush": None}, False),
        ({}, False),
    ],
)
def test_is_rush_only_for_json_true(details, rush):
    assert only_row(details=details)["is_rush"] is rush


def test_extra_is_details_without_arches_and_rush():
    details = {"arches": "upper", "rush": True, "color": "clear", "nested": {"arches": "x"}, "n": [1, 2]}
    assert only_row(details=details)["extra"] == {"color": "clear", "nested": {"arches": "x"}, "n": [1, 2]}


def test_extra_of_details_with_only_promoted_keys_is_empty():
    assert only_row(details={"arches": None, "rush": False})["extra"] == {}


def test_details_that_are_not_an_object():
    # details->>'arches' is NULL on arrays and scalars; extra keeps the value as it is
    row = only_row(details=["upper"])
    assert (row["arches"], row["is_rush"], row["extra"]) == (None, False, ["upper"])


def test_json_null_details():
    row = only_row(details=None)
    assert (row["arches"], row["is_rush"], row["extra"]) == (None, False, {})


def test_details_of_the_input_are_not_changed():
    details = {"arches": "upper", "rush": True, "k": 1}
    frame = batch({"details": details})
    before = copy.deepcopy(frame)
    SPEC.transform(frame)
    assert details == {"arches": "upper", "rush": True, "k": 1}
    pd.testing.assert_frame_equal(frame, before)


# --- rule order ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "category", "mentions"),
    [
        ({"order_no": " ", "status": "Bad", "price": Decimal("-1")}, DATA_QUALITY, "order_no"),
        ({"status": "Bad", "price": Decimal("-1"), "aligner_count": -1}, DATA_QUALITY, "status 'Bad'"),
        ({"price": Decimal("-1.00"), "aligner_count": -1, "details": {"arches": 5}}, BUSINESS_RULE, "price"),
        ({"aligner_count": -1, "details": {"arches": "UP"}}, BUSINESS_RULE, "aligner_count"),
        ({"details": {"arches": "UP", "rush": "yes"}}, DATA_QUALITY, "arches"),
    ],
)
def test_first_rule_in_contract_order_wins(override, category, mentions):
    reject = only_reject(**override)
    assert reject["category"] == category
    assert mentions in reject["detail"]


def test_each_row_lands_in_exactly_one_place():
    result = SPEC.transform(
        batch({}, {"price": Decimal("-1")}, {"status": "x", "aligner_count": -2}, {"order_no": " ab-4 "})
    )
    assert result.rows["legacy_id"].tolist() == [1, 4]
    assert result.rejects["legacy_id"].tolist() == [2, 3]
    assert result.rows["parent_legacy_patient_id"].tolist() == [9, 9]
