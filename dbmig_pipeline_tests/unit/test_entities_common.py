"""The shared helpers (MAPPING.md section 3, "General") and the entity registry.

Also checks every spec against the shipped DDL, so a renamed column or a
wrong SQL type fails here rather than at load time.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES, common, get_entity
from dbmig_pipeline.entities.orders import price_cents
from dbmig_pipeline.entities.spec import BUSINESS_RULE, DATA_QUALITY, EntitySpec, TargetColumn

ALL_PYTHON_WHITESPACE = "".join(chr(code) for code in range(0x110000) if chr(code).isspace())


def objects(*values) -> pd.Series:
    return pd.Series(list(values), dtype=object)


# --- trimming ---------------------------------------------------------------


def test_whitespace_set_covers_the_tricky_characters():
    for char in "\t\n\r\x0b\x0c \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000":
        assert char in ALL_PYTHON_WHITESPACE


@pytest.mark.parametrize("char", list(ALL_PYTHON_WHITESPACE))
def test_trimmed_strips_every_python_whitespace_character(char):
    assert common.trimmed(objects(f"{char}{char}a b{char}")).tolist() == ["a b"]


def test_trimmed_keeps_inner_whitespace_and_non_whitespace_format_characters():
    # zero-width space is not white space for str.strip(), so it must survive
    assert common.trimmed(objects(" a\t b ", "\u200bx\u200b")).tolist() == ["a\t b", "\u200bx\u200b"]


def test_trimmed_makes_empty_and_missing_values_none():
    result = common.trimmed(objects("", ALL_PYTHON_WHITESPACE, None, "x"))
    assert result.tolist() == [None, None, None, "x"]
    assert result.dtype == object


def test_trimmed_turns_pandas_string_missing_values_into_none():
    # pandas 3 infers its str dtype (NaN as missing) from psycopg2 strings
    frame = pd.DataFrame.from_records([(" a ",), (None,)], columns=["name"])
    assert common.trimmed(frame["name"]).tolist() == ["a", None]


def test_trimmed_does_not_mutate_its_input():
    values = objects(" a ", None)
    common.trimmed(values)
    assert values.tolist() == [" a ", None]


def test_trimmed_on_an_empty_series():
    assert common.trimmed(pd.Series([], dtype=object)).tolist() == []


def test_shown_quotes_and_truncates_long_values():
    shown = common.shown(objects("abc", "x" * 500, None))
    assert shown.iloc[0] == "'abc'"
    assert shown.iloc[1] == "'" + "x" * common.MAX_SHOWN + "…'"
    assert shown.iloc[2] == "NULL"


# --- email -----------------------------------------------------------------


def test_email_is_trimmed_and_lower_cased():
    values, invalid = common.email(objects(" Ann.Lee@Example.COM\t", "\xa0ÉVA@X.ORG\n"))
    assert values.tolist() == ["ann.lee@example.com", "éva@x.org"]
    assert not invalid.any()


@pytest.mark.parametrize("empty", ["", "   ", "\t\n\x0b\x0c\r", None])
def test_empty_email_is_null_without_warning(empty):
    values, invalid = common.email(objects(empty))
    assert values.tolist() == [None]
    assert invalid.tolist() == [False]


@pytest.mark.parametrize("junk", ["ann.example.com", "a@@b.com", "a@b@c.com", "@@", "n/a"])
def test_email_without_exactly_one_at_is_null_with_warning(junk):
    values, invalid = common.email(objects(junk))
    assert values.tolist() == [None]
    assert invalid.tolist() == [True]


# --- phone -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "(555) 123-4567",
        "555.123.4567",
        "+1 555 123 4567",
        "5551234567",
        "1-555-123-4567",
        "15551234567",
        " \t555 123 4567\n",
        "tel: 555/123.4567",
    ],
)
def test_listed_phone_formats_become_e164(raw):
    values, invalid = common.phone_e164(objects(raw))
    assert values.tolist() == ["+15551234567"]
    assert invalid.tolist() == [False]


@pytest.mark.parametrize("empty", ["", "  ", "\t\x0b", None])
def test_empty_phone_is_null_without_warning(empty):
    values, invalid = common.phone_e164(objects(empty))
    assert values.tolist() == [None]
    assert invalid.tolist() == [False]


@pytest.mark.parametrize(
    "junk",
    [
        "555123456",  # 9 digits
        "155512345678",  # 12 digits
        "25551234567",  # 11 digits not starting with 1
        "+44 20 7946 0958",  # 12 digits
        "call me",  # no digits at all
        "-",
        "٥٥٥١٢٣٤٥٦٧",  # Arabic-Indic digits are not E.164 digits
    ],
)
def test_other_phones_are_null_with_warning(junk):
    values, invalid = common.phone_e164(objects(junk))
    assert values.tolist() == [None]
    assert invalid.tolist() == [True]


# --- json objects ------------------------------------------------------------


def test_json_objects_leave_out_missing_keys():
    built = common.json_objects({"a": objects("x", None), "b": objects(None, None)})
    assert built.tolist() == [{"a": "x"}, {}]


# --- verdicts ---------------------------------------------------------------

SPEC = EntitySpec(
    name="things",
    source_table="things",
    source_columns=("id", "created_at", "updated_at", "owner_id", "label"),
    target_table="things",
    target_columns=(TargetColumn("label", "text"),),
    transform=lambda batch: None,  # never called: only the layout is used
    parents=(),
)
STAMP = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)


def things(count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(1, count + 1),
            "created_at": [STAMP] * count,
            "updated_at": [STAMP] * count,
            "owner_id": [7] * count,
            "label": ["x"] * count,
        }
    )


def test_first_reject_wins_and_later_rules_only_catch_new_rows():
    batch = things(3)
    verdicts = common.Verdicts(batch)
    verdicts.reject(pd.Series([True, False, False]), DATA_QUALITY, "first")
    verdicts.reject(pd.Series([True, True, False]), BUSINESS_RULE, pd.Series(["no", "second", "no"]))
    result = verdicts.result(SPEC, {"label": batch["label"]})
    assert result.rejects.to_dict("records") == [
        {"legacy_id": 1, "category": DATA_QUALITY, "detail": "first"},
        {"legacy_id": 2, "category": BUSINESS_RULE, "detail": "second"},
    ]
    assert result.rows["legacy_id"].tolist() == [3]


def test_missing_masks_count_as_not_rejected():
    batch = things(2)
    verdicts = common.Verdicts(batch)
    verdicts.reject(pd.Series([pd.NA, True], dtype="boolean"), BUSINESS_RULE, "x")
    assert verdicts.rejected.tolist() == [False, True]


def test_reject_empty_names_every_empty_column():
    batch = things(3)
    verdicts = common.Verdicts(batch)
    verdicts.reject_empty({"a": objects(None, "x", None), "b": objects(None, "y", "z")})
    details = verdicts.result(SPEC, {"label": batch["label"]}).rejects.set_index("legacy_id")["detail"]
    assert details[1].startswith("a, b empty after trimming")
    assert details[3].startswith("a empty after trimming")
    assert 2 not in details.index


def test_warnings_are_kept_only_for_migrated_rows():
    batch = things(2)
    verdicts = common.Verdicts(batch)
    verdicts.warn(pd.Series([True, True]), "email", "bad email")
    verdicts.reject(pd.Series([True, False]), DATA_QUALITY, "gone")
    result = verdicts.result(SPEC, {"label": batch["label"]})
    assert result.warnings.to_dict("records") == [{"legacy_id": 2, "column": "email", "detail": "bad email"}]


def test_result_layout_and_copies():
    batch = things(1)
    verdicts = common.Verdicts(batch)
    result = verdicts.result(SPEC, {"label": batch["label"]})
    assert list(result.rows.columns) == ["legacy_id", "created_at", "source_updated_at", "label"]
    assert list(result.rejects.columns) == ["legacy_id", "category", "detail"]
    assert list(result.warnings.columns) == ["legacy_id", "column", "detail"]
    assert result.rows.loc[0, "created_at"] == STAMP


def test_result_refuses_values_that_do_not_match_the_spec():
    batch = things(1)
    with pytest.raises(ValueError, match="things"):
        common.Verdicts(batch).result(SPEC, {"labels": batch["label"]})


# --- registry and specs -------------------------------------------------------


def test_entities_are_in_dependency_order():
    assert ENTITY_NAMES == ("offices", "doctors", "patients", "orders", "jaws", "system_messages")
    for position, spec in enumerate(ENTITIES):
        for parent in spec.parent_entities:
            assert ENTITY_NAMES.index(parent) < position


def test_get_entity_finds_each_spec():
    for spec in ENTITIES:
        assert get_entity(spec.name) is spec


def test_get_entity_lists_valid_names_on_a_typo():
    with pytest.raises(KeyError, match="offices, doctors, patients, orders, jaws, system_messages"):
        get_entity("office")


def test_parents_match_the_contract():
    parents = {spec.name: [(p.entity, p.source_column, p.target_column) for p in spec.parents] for spec in ENTITIES}
    assert parents == {
        "offices": [],
        "doctors": [("offices", "office_id", "office_id")],
        "patients": [("doctors", "doctor_id", "doctor_id")],
        "orders": [("patients", "patient_id", "patient_id")],
        "jaws": [],
        "system_messages": [],
    }
    assert [spec.name for spec in ENTITIES if spec.cursor_nullable] == ["system_messages"]
    assert get_entity("orders").unique_keys == ("order_number",)


def _ddl_columns(sql_file: str, schema: str) -> dict[str, dict[str, str]]:
    """table → {column: type} parsed from one of the shipped DDL files."""
    text = resources.files("dbmig_pipeline").joinpath("sql", sql_file).read_text()
    tables = {}
    for table, body in re.findall(rf"CREATE TABLE IF NOT EXISTS {schema}\.(\w+) \((.*?)\n\);", text, re.S):
        columns = {}
        for line in body.strip().splitlines():
            name, rest = line.strip().split(None, 1)
            columns[name] = re.split(r" NOT NULL| PRIMARY KEY| REFERENCES| CHECK| DEFAULT| UNIQUE|,", rest)[0].strip()
        tables[table] = columns
    return tables


BOOKKEEPING = {"id", "legacy_id", "created_at", "source_updated_at", "synced_at", "deleted_at"}


@pytest.mark.parametrize("spec", ENTITIES, ids=ENTITY_NAMES)
def test_target_columns_match_the_target_ddl(spec):
    table = _ddl_columns("target_schema.sql", "app")[spec.target_table]
    parent_columns = {p.target_column for p in spec.parents}
    expected = {name: sql_type for name, sql_type in table.items() if name not in BOOKKEEPING | parent_columns}
    assert {c.name: c.sql_type for c in spec.target_columns} == expected


@pytest.mark.parametrize("spec", ENTITIES, ids=ENTITY_NAMES)
def test_source_columns_exist_and_start_with_the_key(spec):
    table = _ddl_columns("legacy_schema.sql", "public")[spec.source_table]
    assert spec.source_columns[0] == "id"
    assert {"created_at", spec.cursor_column} <= set(spec.source_columns)
    assert set(spec.source_columns) <= set(table)
    assert len(set(spec.source_columns)) == len(spec.source_columns)
    assert {p.source_column for p in spec.parents} <= set(spec.source_columns)


@pytest.mark.parametrize("spec", ENTITIES, ids=ENTITY_NAMES)
def test_pii_and_unique_keys_are_target_columns(spec):
    assert set(spec.pii_columns) <= set(spec.target_column_names)
    assert set(spec.unique_keys) <= set(spec.target_column_names)


@pytest.mark.parametrize("spec", ENTITIES, ids=ENTITY_NAMES)
def test_every_transform_accepts_an_empty_batch(spec):
    result = spec.transform(pd.DataFrame.from_records([], columns=list(spec.source_columns)))
    staging = [p.staging_column for p in spec.parents]
    assert list(result.rows.columns) == [
        "legacy_id", "created_at", "source_updated_at", *staging, *spec.target_column_names
    ]
    assert result.rows.empty and result.rejects.empty and result.warnings.empty
    assert list(result.rejects.columns) == ["legacy_id", "category", "detail"]
    assert list(result.warnings.columns) == ["legacy_id", "column", "detail"]


def test_price_cents_is_exact_over_the_numeric_10_2_range():
    # the orders transform relies on float(price) * 100 rounding back exactly
    rng = np.random.default_rng(7)
    cents = np.concatenate([rng.integers(0, 10**10, 20_000), np.arange(0, 10_000), [10**10 - 1]])
    prices = pd.Series([Decimal(int(c)) / 100 for c in cents], dtype=object)
    assert (price_cents(prices).to_numpy() == cents).all()
