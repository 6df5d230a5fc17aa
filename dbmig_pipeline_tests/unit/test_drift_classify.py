"""Schema-drift classification: pure rules over fingerprints, no database."""
import copy

import pytest

from dbmig_pipeline.engine.drift_classify import (
    ADDITIVE,
    BREAKING,
    LENIENT,
    NORMAL,
    OK,
    SOURCE,
    STRICT,
    TARGET,
    diff_tables,
    halt_message,
    state_of,
    unusable,
)
from dbmig_pipeline.entities import get_entity
from dbmig_pipeline.settings import ConfigError, Settings

ORDERS = get_entity("orders")


def _col(type_, not_null=False, default=None):
    return {"type": type_, "not_null": not_null, "default": default}


SOURCE_ORDERS = {
    "table": "public.orders",
    "exists": True,
    "columns": {
        "id": _col("integer", True, "nextval('public.orders_id_seq'::regclass)"),
        "created_at": _col("timestamp with time zone", True),
        "updated_at": _col("timestamp with time zone", True),
        "patient_id": _col("integer", True),
        "order_no": _col("character varying(30)", True),
        "status": _col("character varying(20)", True),
        "aligner_count": _col("integer"),
        "price": _col("numeric(10,2)", True),
        "currency": _col("character(3)", True, "'USD'::bpchar"),
        "details": _col("jsonb", True, "'{}'::jsonb"),
        "submitted_at": _col("timestamp with time zone"),
        "shipped_at": _col("timestamp with time zone"),
        "legacy_flag": _col("boolean"),  # a column the mapping does not read
    },
    "constraints": [
        {"kind": "f", "definition": "FOREIGN KEY (patient_id) REFERENCES public.patients(id)", "columns": ["patient_id"]},
        {"kind": "p", "definition": "PRIMARY KEY (id)", "columns": ["id"]},
        {"kind": "u", "definition": "UNIQUE (order_no)", "columns": ["order_no"]},
    ],
    "indexes": [{"definition": "CREATE INDEX ON public.orders USING btree (updated_at, id)", "unique": False}],
}

TARGET_ORDERS = {
    "table": "app.orders",
    "exists": True,
    "columns": {
        "id": _col("uuid", True, "gen_random_uuid()"),
        "legacy_id": _col("bigint", True),
        "aligner_count": _col("integer"),
        "price_cents": _col("bigint", True),
    },
    "constraints": [
        {"kind": "c", "definition": "CHECK ((aligner_count >= 0))", "columns": ["aligner_count"]},
        {"kind": "p", "definition": "PRIMARY KEY (id)", "columns": ["id"]},
    ],
    "indexes": [],
}


def _changed(base, edit):
    current = copy.deepcopy(base)
    edit(current)
    return current


def _source(edit):
    return diff_tables(ORDERS, SOURCE, SOURCE_ORDERS, _changed(SOURCE_ORDERS, edit))


def _target(edit):
    return diff_tables(ORDERS, TARGET, TARGET_ORDERS, _changed(TARGET_ORDERS, edit))


def _only(diffs):
    assert len(diffs) == 1, [d.describe() for d in diffs]
    return diffs[0]


def test_identical_fingerprints_have_no_difference():
    assert diff_tables(ORDERS, SOURCE, SOURCE_ORDERS, copy.deepcopy(SOURCE_ORDERS)) == []
    assert state_of([], NORMAL) == OK


def test_dropping_a_read_column_is_breaking_even_when_lenient():
    d = _only(_source(lambda fp: fp["columns"].pop("price")))
    assert (d.change, d.subject, d.severity, d.critical) == ("column_dropped", "price", BREAKING, True)
    assert d.halts(LENIENT) and d.halts(NORMAL)


def test_a_rename_is_a_breaking_drop_plus_an_additive_add_with_a_hint():
    def rename(fp):
        fp["columns"]["order_number"] = fp["columns"].pop("order_no")

    diffs = {d.change: d for d in _source(rename)}
    assert diffs["column_dropped"].subject == "order_no" and diffs["column_dropped"].severity == BREAKING
    assert "renamed to order_number?" in diffs["column_dropped"].reason
    assert diffs["column_added"].severity == ADDITIVE


def test_widening_a_read_column_is_still_a_type_change():
    d = _only(_source(lambda fp: fp["columns"]["status"].update(type="text")))
    assert (d.change, d.before, d.after, d.severity, d.critical) == (
        "column_type", "character varying(20)", "text", BREAKING, True)


def test_a_read_column_that_may_now_be_null_halts_unless_lenient():
    d = _only(_source(lambda fp: fp["columns"]["status"].update(not_null=False)))
    assert (d.change, d.severity, d.critical) == ("column_nullability", BREAKING, False)
    assert d.halts(NORMAL) and not d.halts(LENIENT)


def test_a_read_column_that_now_refuses_null_is_additive():
    d = _only(_source(lambda fp: fp["columns"]["aligner_count"].update(not_null=True)))
    assert d.severity == ADDITIVE


@pytest.mark.parametrize("edit", [
    lambda fp: fp["columns"].update(promo=_col("text")),
    lambda fp: fp["columns"]["legacy_flag"].update(type="text"),
    lambda fp: fp["columns"].pop("legacy_flag"),
    lambda fp: fp["columns"]["currency"].update(default="'EUR'::bpchar"),
    lambda fp: fp["indexes"].append({"definition": "CREATE INDEX ON public.orders USING btree (price)", "unique": False}),
    lambda fp: fp["indexes"].clear(),
    lambda fp: fp["constraints"].append({"kind": "c", "definition": "CHECK ((price > 0))", "columns": ["price"]}),
], ids=["new-unused-column", "retyped-unused-column", "dropped-unused-column", "new-default", "new-index",
        "dropped-index", "new-check"])
def test_additive_changes_warn_in_normal_mode_and_halt_only_when_strict(edit):
    d = _only(_source(edit))
    assert d.severity == ADDITIVE
    assert not d.halts(NORMAL) and not d.halts(LENIENT) and d.halts(STRICT)
    assert state_of([d], NORMAL) == ADDITIVE and state_of([d], STRICT) == BREAKING


def test_the_parent_foreign_key_and_the_primary_key_are_relied_on():
    dropped_fk = _only(_source(lambda fp: fp["constraints"].pop(0)))
    assert dropped_fk.change == "constraint_dropped" and dropped_fk.severity == BREAKING
    assert "resolves parents" in dropped_fk.reason
    pk = _source(lambda fp: fp["constraints"][1].update(definition="PRIMARY KEY (id, order_no)"))
    assert {d.change for d in pk} == {"constraint_dropped", "constraint_added"}
    assert all(d.severity == BREAKING for d in pk)


def test_a_new_foreign_key_on_a_read_column_is_breaking_on_an_unread_one_additive():
    new_fk = {"kind": "f", "definition": "FOREIGN KEY (aligner_count) REFERENCES public.kits(id)",
              "columns": ["aligner_count"]}
    assert _only(_source(lambda fp: fp["constraints"].append(new_fk))).severity == BREAKING
    unrelated = {"kind": "f", "definition": "FOREIGN KEY (legacy_flag) REFERENCES public.flags(id)",
                 "columns": ["legacy_flag"]}
    assert _only(_source(lambda fp: fp["constraints"].append(unrelated))).severity == ADDITIVE


def test_constraints_are_matched_by_definition_not_by_name_or_order():
    reordered = _changed(SOURCE_ORDERS, lambda fp: fp["constraints"].reverse())
    assert diff_tables(ORDERS, SOURCE, SOURCE_ORDERS, reordered) == []


@pytest.mark.parametrize("edit", [
    lambda fp: fp["columns"].update(promo_code=_col("text")),
    lambda fp: fp["constraints"].pop(0),
    lambda fp: fp["columns"]["price_cents"].update(not_null=False),
    lambda fp: fp["columns"]["id"].update(default=None),
    lambda fp: fp["indexes"].append({"definition": "CREATE UNIQUE INDEX ON app.orders USING btree (legacy_id)",
                                     "unique": True}),
], ids=["added-column", "dropped-check", "nullability", "default", "unique-index"])
def test_every_target_column_or_constraint_change_is_breaking(edit):
    assert all(d.severity == BREAKING for d in _target(edit))
    assert state_of(_target(edit), NORMAL) == BREAKING


def test_a_plain_new_target_index_is_additive():
    index = {"definition": "CREATE INDEX ON app.orders USING btree (price_cents)", "unique": False}
    assert _only(_target(lambda fp: fp["indexes"].append(index))).severity == ADDITIVE


def test_lenient_still_halts_on_a_dropped_or_retyped_written_target_column():
    dropped = _only(_target(lambda fp: fp["columns"].pop("price_cents")))
    assert dropped.critical and dropped.halts(LENIENT)
    added = _only(_target(lambda fp: fp["columns"].update(promo_code=_col("text"))))
    assert not added.halts(LENIENT)


def test_a_missing_table_halts_in_every_mode():
    d = _only(diff_tables(ORDERS, SOURCE, SOURCE_ORDERS, {"table": "public.orders", "exists": False}))
    assert d.change == "table_missing" and d.halts(LENIENT)


def test_first_contact_is_refused_only_when_the_source_lacks_what_the_spec_reads():
    assert unusable(ORDERS, SOURCE, SOURCE_ORDERS) == []
    lacking = _changed(SOURCE_ORDERS, lambda fp: fp["columns"].pop("details"))
    assert [d.subject for d in unusable(ORDERS, SOURCE, lacking)] == ["details"]
    assert unusable(ORDERS, TARGET, TARGET_ORDERS) == []


def test_the_halt_message_lists_each_difference_and_the_way_out():
    diffs = _source(lambda fp: fp["columns"]["status"].update(type="text")) + _source(
        lambda fp: fp["columns"].update(promo=_col("text")))
    message = halt_message("orders", diffs, NORMAL)
    assert "public.orders.status: type character varying(20) → text" in message
    assert "HALTS" in message and "warning" in message and "promo" in message
    assert "dbmig drift accept --entity orders" in message
    assert "dbmig migrate --entity orders --from" in message and "--full" in message
    assert "additive" in halt_message("orders", diffs[1:], NORMAL)


def test_strictness_setting_defaults_to_normal_and_names_the_variable_when_wrong():
    assert Settings.from_env({}).drift_strictness == NORMAL
    assert Settings.from_env({"DBMIG_DRIFT_STRICTNESS": " Strict "}).drift_strictness == STRICT
    with pytest.raises(ConfigError, match="DBMIG_DRIFT_STRICTNESS"):
        Settings.from_env({"DBMIG_DRIFT_STRICTNESS": "paranoid"})
