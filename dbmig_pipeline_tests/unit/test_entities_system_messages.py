"""system_messages transform: MAPPING.md section 3, "General" and "system_messages"."""
from __future__ import annotations

import copy
import datetime as dt

import pandas as pd
import pytest

from dbmig_pipeline_tests.unit.entity_batches import EntityBatches
from dbmig_pipeline.entities.spec import DATA_QUALITY
from dbmig_pipeline.entities.system_messages import SPEC

UTC = dt.timezone.utc
CREATED = dt.datetime(2019, 3, 1, 8, 0, tzinfo=UTC)
UPDATED = dt.datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
GOOD = {
    "id": 1,
    "created_at": CREATED,
    "updated_at": UPDATED,
    "severity": "info",
    "code": "SYNC_OK",
    "body": "nightly sync finished",
    "context": {"job": "nightly", "rows": 3},
}


_batches = EntityBatches(SPEC, GOOD)
batch, only_row, only_reject = _batches.batch, _batches.only_row, _batches.only_reject


def test_good_row_maps_every_column():
    assert only_row() == {
        "legacy_id": 1,
        "created_at": CREATED,
        "source_updated_at": UPDATED,
        "severity": "info",
        "code": "SYNC_OK",
        "body": "nightly sync finished",
        "context": {"job": "nightly", "rows": 3},
    }


def test_cursor_is_nullable():
    assert SPEC.cursor_nullable and SPEC.cursor_column == "updated_at"


def test_rows_without_updated_at_are_migrated_with_null_source_updated_at():
    result = SPEC.transform(batch({"updated_at": None}, {}))
    assert result.rejects.empty
    assert pd.isna(result.rows.iloc[0]["source_updated_at"])
    assert result.rows.iloc[1]["source_updated_at"] == UPDATED


@pytest.mark.parametrize(
    ("raw", "severity"),
    [
        ("info", "info"),
        ("INFO", "info"),
        (" Info\t", "info"),
        ("warn", "warning"),
        ("WARN", "warning"),
        ("\x0bWarn\x0c", "warning"),
        ("error", "error"),
        ("Error", "error"),
        ("\nERROR ", "error"),
    ],
)
def test_severity_is_case_insensitive_and_warn_becomes_warning(raw, severity):
    assert only_row(severity=raw)["severity"] == severity


@pytest.mark.parametrize("raw", ["critical", "debug", "warning", "err", "in fo"])
def test_unknown_severity_is_quarantined_as_data_quality(raw):
    reject = only_reject(severity=raw)
    assert reject["category"] == DATA_QUALITY
    assert f"severity '{raw}'" in reject["detail"]


@pytest.mark.parametrize("raw", ["", "  ", "\t\n"])
def test_empty_severity_is_quarantined_by_the_text_rule(raw):
    reject = only_reject(severity=raw)
    assert reject["category"] == DATA_QUALITY
    assert "severity empty" in reject["detail"]


def test_code_and_body_are_trimmed():
    row = only_row(code="\tSYNC_OK ", body="\r\n line one\nline two \x0c")
    assert (row["code"], row["body"]) == ("SYNC_OK", "line one\nline two")


@pytest.mark.parametrize("column", ["code", "body"])
def test_empty_code_or_body_is_quarantined(column):
    reject = only_reject(**{column: " \n\x0b"})
    assert reject["category"] == DATA_QUALITY
    assert column in reject["detail"]


def test_empty_text_wins_over_unknown_severity():
    reject = only_reject(severity="critical", body="")
    assert "body" in reject["detail"] and "critical" not in reject["detail"]


def test_null_context_becomes_an_empty_object():
    # SQL NULL and JSON null both arrive from psycopg2 as None
    assert only_row(context=None)["context"] == {}


@pytest.mark.parametrize("context", [{}, {"a": {"b": [1, None]}}, [1, 2], "text", 5, True])
def test_other_context_is_kept_as_is(context):
    assert only_row(context=context)["context"] == context


def test_each_row_lands_in_exactly_one_place():
    result = SPEC.transform(batch({}, {"severity": "fatal"}, {"context": None, "updated_at": None}))
    assert result.rows["legacy_id"].tolist() == [1, 3]
    assert result.rejects["legacy_id"].tolist() == [2]
    assert result.warnings.empty


def test_input_is_not_mutated():
    frame = batch({"context": None, "severity": " WARN "})
    before = copy.deepcopy(frame)
    SPEC.transform(frame)
    pd.testing.assert_frame_equal(frame, before)
