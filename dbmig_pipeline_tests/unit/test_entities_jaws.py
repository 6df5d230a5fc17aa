"""jaws transform: MAPPING.md section 3, "General" and "jaws"."""
from __future__ import annotations

import copy
import datetime as dt

import pandas as pd
import pytest

from dbmig_pipeline.entities.jaws import FDI_TEETH, SPEC
from dbmig_pipeline_tests.unit.entity_batches import EntityBatches
from dbmig_pipeline.entities.spec import DATA_QUALITY

UTC = dt.timezone.utc
CREATED = dt.datetime(2023, 3, 1, 8, 0, tzinfo=UTC)
UPDATED = dt.datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
GOOD = {
    "id": 1,
    "created_at": CREATED,
    "updated_at": UPDATED,
    "patient_ref": 77,
    "arch": "U",
    "teeth": "11,12,21",
    "scan_url": "https://scans.example/1.stl",
}
CONTRACT_FDI = (
    set(range(11, 19)) | set(range(21, 29)) | set(range(31, 39)) | set(range(41, 49))
    | set(range(51, 56)) | set(range(61, 66)) | set(range(71, 76)) | set(range(81, 86))
)


_batches = EntityBatches(SPEC, GOOD)
batch, only_row, only_reject = _batches.batch, _batches.only_row, _batches.only_reject


def test_good_row_maps_every_column():
    assert only_row() == {
        "legacy_id": 1,
        "created_at": CREATED,
        "source_updated_at": UPDATED,
        "legacy_patient_id": 77,
        "arch": "upper",
        "teeth": [11, 12, 21],
        "scan_url": "https://scans.example/1.stl",
    }


def test_jaws_have_no_parent():
    assert SPEC.parents == ()
    assert "parent_legacy_patient_id" not in SPEC.transform(batch({})).rows.columns


def test_fdi_set_is_the_contract_set():
    assert FDI_TEETH == CONTRACT_FDI


@pytest.mark.parametrize(("ref", "expected"), [(77, 77), (999999, 999999), (None, None)])
def test_legacy_patient_id_is_kept_even_pointing_nowhere(ref, expected):
    value = only_row(patient_ref=ref)["legacy_patient_id"]
    assert (value is None or value is pd.NA) if expected is None else value == expected


@pytest.mark.parametrize(("code", "arch"), [("U", "upper"), ("L", "lower"), (" U", "upper"), ("\tL\n", "lower")])
def test_arch(code, arch):
    assert only_row(arch=code)["arch"] == arch


@pytest.mark.parametrize("code", ["u", "l", "X", "B"])
def test_arch_outside_the_set_or_lower_case_is_quarantined(code):
    reject = only_reject(arch=code)
    assert reject["category"] == DATA_QUALITY
    assert f"arch '{code}'" in reject["detail"]


@pytest.mark.parametrize("code", [" ", "", "\t"])
def test_empty_arch_is_quarantined_by_the_text_rule(code):
    reject = only_reject(arch=code)
    assert reject["category"] == DATA_QUALITY
    assert "arch empty" in reject["detail"]


@pytest.mark.parametrize(
    ("teeth", "expected"),
    [
        (" 21, 11,,11 ", [11, 21]),
        ("48,18,11", [11, 18, 48]),
        ("\t21\n,\x0b12\x0c, 85 ", [12, 21, 85]),
        ("\xa011\xa0", [11]),
        ("51,55,61,65,71,75,81,85", [51, 55, 61, 65, 71, 75, 81, 85]),
        ("011", [11]),
        (None, []),
        ("", []),
        ("   ", []),
        (",, ,", []),
    ],
)
def test_teeth_are_split_trimmed_sorted_and_unique(teeth, expected):
    value = only_row(teeth=teeth)["teeth"]
    assert value == expected
    assert all(type(tooth) is int for tooth in value)


def test_every_contract_tooth_is_accepted():
    teeth = ",".join(str(tooth) for tooth in sorted(CONTRACT_FDI, reverse=True))
    assert only_row(teeth=teeth)["teeth"] == sorted(CONTRACT_FDI)


@pytest.mark.parametrize(
    ("teeth", "bad"),
    [
        ("11,19", "19"),
        ("x", "x"),
        ("60", "60"),
        ("10", "10"),
        ("56", "56"),
        ("86", "86"),
        ("0", "0"),
        ("11, 1 1", "1 1"),
        ("+11", "+11"),
        ("-11", "-11"),
        ("11.0", "11.0"),
        ("١١", "١١"),  # Arabic-Indic eleven: digits, but not ASCII
        ("11;12", "11;12"),
        ("99999999999999999999999", "99999999999999999999999"),
    ],
)
def test_invalid_tooth_token_is_quarantined(teeth, bad):
    reject = only_reject(teeth=teeth)
    assert reject["category"] == DATA_QUALITY
    assert f"'{bad}'" in reject["detail"]


def test_first_invalid_token_is_named():
    assert "'x'" in only_reject(teeth="11, x, 19")["detail"]


def test_bad_arch_wins_over_bad_teeth():
    assert "arch" in only_reject(arch="u", teeth="x")["detail"]


@pytest.mark.parametrize(("url", "expected"), [(" https://a/b \n", "https://a/b"), ("  ", None), (None, None)])
def test_scan_url_is_trimmed(url, expected):
    assert only_row(scan_url=url)["scan_url"] == expected


def test_mixed_batch_keeps_rows_aligned():
    result = SPEC.transform(
        batch({"teeth": "21,11"}, {"teeth": "19"}, {"teeth": None, "arch": "L"}, {"teeth": "12", "arch": "u"})
    )
    assert result.rows["legacy_id"].tolist() == [1, 3]
    assert result.rows["teeth"].tolist() == [[11, 21], []]
    assert result.rows["arch"].tolist() == ["upper", "lower"]
    assert result.rejects["legacy_id"].tolist() == [2, 4]


def test_input_is_not_mutated():
    frame = batch({"teeth": " 21, 11 ", "arch": " U "})
    before = copy.deepcopy(frame)
    SPEC.transform(frame)
    pd.testing.assert_frame_equal(frame, before)
