"""The legacy seed against the embedded PostgreSQL: counts, edge cases, guards, determinism."""
from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timezone
from importlib import resources

import pytest
import sqlalchemy as sa

from dbmig_pipeline.demo import seed as seed_module
from dbmig_pipeline.demo.seed import BASE_COUNTS, TABLES, SeedRefused, planned_counts, seed_legacy

SCALE = 0.002
#: round(BASE_COUNTS * 0.002), offices raised to the 10 rows its fixed edge cases need
EXPECTED_AT_SCALE = {"offices": 10, "doctors": 100, "patients": 3000, "orders": 3800, "jaws": 40,
                     "system_messages": 100}
ANCHOR = datetime(2026, 1, 15, tzinfo=timezone.utc)

_WHITESPACE = {"space": 32, "tab": 9, "lf": 10, "cr": 13, "ff": 12, "vt": 11}
_TEXT_COLUMNS = {
    "offices": ("name",),
    "doctors": ("first_name", "last_name"),
    "patients": ("first_name", "last_name", "notes"),
    "system_messages": ("code", "body"),
}


def _padded(table: str, char: int) -> str:
    ends = " OR ".join(f"left({c}, 1) = chr({char}) OR right({c}, 1) = chr({char})" for c in _TEXT_COLUMNS[table])
    return f"SELECT count(*) FROM public.{table} WHERE {ends}"


def _teeth_tokens(condition: str) -> str:
    return ("SELECT count(*) FROM public.jaws WHERE EXISTS (SELECT 1 FROM unnest(string_to_array(teeth, ',')) "
            f"AS t(x) WHERE {condition})")


_PHONES = {
    "parens": r"phone ~ '^\(\d{3}\) \d{3}-\d{4}$'",
    "dots": r"phone ~ '^\d{3}\.\d{3}\.\d{4}$'",
    "plus1_spaces": r"phone ~ '^\+1 \d{3} \d{3} \d{4}$'",
    "empty": "phone = ''",
    "junk": r"phone <> '' AND phone !~ '\d'",
    "eleven_digits_leading_1": r"regexp_replace(phone, '\D', '', 'g') ~ '^1\d{10}$'",
    "wrong_digit_count": r"length(regexp_replace(phone, '\D', '', 'g')) NOT IN (0, 10, 11)",
    "null": "phone IS NULL",
}
_EMAILS = {
    "mixed_case": "email <> lower(email) AND email <> upper(email)",
    "surrounding_space": r"email ~ '^\s|\s$'",
    "empty": "email = ''",
    "junk_without_at": "email <> '' AND strpos(email, '@') = 0",
    "two_at": "length(email) - length(replace(email, '@', '')) = 2",
    "null": "email IS NULL",
}

EDGE_CASES: dict[str, str] = {
    **{f"{t}_text_padded_{name}": _padded(t, char) for t in _TEXT_COLUMNS for name, char in _WHITESPACE.items()},
    **{f"{t}_blank_name": f"SELECT count(*) FROM public.{t} WHERE {c} ~ '^\\s*$'"
       for t, c in (("offices", "name"), ("doctors", "first_name"), ("patients", "first_name"))},
    **{f"{t}_phone_{case}": f"SELECT count(*) FROM public.{t} WHERE {cond}"
       for t in ("offices", "doctors", "patients") for case, cond in _PHONES.items()},
    **{f"{t}_email_{case}": f"SELECT count(*) FROM public.{t} WHERE {cond}"
       for t in ("offices", "doctors", "patients") for case, cond in _EMAILS.items()},
    **{f"specialty_{s}": f"SELECT count(*) FROM public.doctors WHERE specialty = '{s}'"
       for s in ("ORTHO", "GP", "PEDO", "OTHER")},
    "specialty_other_case": "SELECT count(*) FROM public.doctors WHERE specialty <> upper(specialty)",
    "specialty_padded": "SELECT count(*) FROM public.doctors WHERE specialty <> btrim(specialty)",
    "specialty_unknown": "SELECT count(*) FROM public.doctors "
                         "WHERE upper(btrim(specialty)) NOT IN ('ORTHO', 'GP', 'PEDO', 'OTHER')",
    "birth_date_sentinel": "SELECT count(*) FROM public.patients WHERE birth_date = date '1900-01-01'",
    "birth_date_after_created": "SELECT count(*) FROM public.patients "
                                "WHERE birth_date > (created_at AT TIME ZONE 'UTC')::date",
    "birth_date_null": "SELECT count(*) FROM public.patients WHERE birth_date IS NULL",
    **{f"gender_{g}": f"SELECT count(*) FROM public.patients WHERE gender = '{g}'" for g in ("M", "F", "U", "m", "f")},
    "gender_null": "SELECT count(*) FROM public.patients WHERE gender IS NULL",
    **{f"patient_status_{s}": f"SELECT count(*) FROM public.patients WHERE status = {s}" for s in (0, 1, 2, 3, 9)},
    **{f"patient_status_invalid_{s}".replace("-", "minus"): f"SELECT count(*) FROM public.patients WHERE status = {s}"
       for s in (4, 7, -1)},
    **{f"order_status_{s}": f"SELECT count(*) FROM public.orders WHERE status = '{s}'"
       for s in ("draft", "submitted", "in_production", "shipped", "delivered", "cancelled", "Shipped", "unknown")},
    "aligner_count_null": "SELECT count(*) FROM public.orders WHERE aligner_count IS NULL",
    "aligner_count_negative": "SELECT count(*) FROM public.orders WHERE aligner_count < 0",
    "price_negative": "SELECT count(*) FROM public.orders WHERE price < 0",
    "price_with_cents": "SELECT count(*) FROM public.orders WHERE price <> trunc(price)",
    "currency_default": "SELECT count(*) FROM public.orders WHERE currency = 'USD'",
    **{f"arches_{a}": f"SELECT count(*) FROM public.orders WHERE details->>'arches' = '{a}'"
       for a in ("upper", "lower", "both", "", "top")},
    "arches_absent": "SELECT count(*) FROM public.orders WHERE NOT details ? 'arches'",
    "arches_json_null": "SELECT count(*) FROM public.orders WHERE details->'arches' = 'null'::jsonb",
    "arches_padded": "SELECT count(*) FROM public.orders WHERE details->>'arches' <> btrim(details->>'arches')",
    "rush_true": "SELECT count(*) FROM public.orders WHERE details->'rush' = 'true'::jsonb",
    "rush_false": "SELECT count(*) FROM public.orders WHERE details->'rush' = 'false'::jsonb",
    "rush_string_true": "SELECT count(*) FROM public.orders WHERE details->'rush' = to_jsonb('true'::text)",
    "rush_absent": "SELECT count(*) FROM public.orders WHERE NOT details ? 'rush'",
    "details_other_keys": "SELECT count(*) FROM public.orders WHERE details - 'arches' - 'rush' <> '{}'::jsonb",
    "submitted_at_null": "SELECT count(*) FROM public.orders WHERE submitted_at IS NULL",
    "submitted_at_set": "SELECT count(*) FROM public.orders WHERE submitted_at IS NOT NULL",
    "shipped_at_null": "SELECT count(*) FROM public.orders WHERE shipped_at IS NULL",
    "shipped_at_set": "SELECT count(*) FROM public.orders WHERE shipped_at IS NOT NULL",
    "order_no_mixed_case": "SELECT count(*) FROM public.orders WHERE order_no <> upper(order_no)",
    "order_no_padded": r"SELECT count(*) FROM public.orders WHERE order_no ~ '^\s|\s$'",
    **{f"arch_{a}": f"SELECT count(*) FROM public.jaws WHERE arch = '{a}'" for a in ("U", "L", "X", "u")},
    "teeth_valid_plain": r"SELECT count(*) FROM public.jaws WHERE teeth ~ '^\d\d(,\d\d)*$'",
    "teeth_with_spaces": r"SELECT count(*) FROM public.jaws WHERE teeth ~ '\d' AND teeth ~ ' '",
    "teeth_duplicates": "SELECT count(*) FROM public.jaws WHERE EXISTS (SELECT 1 FROM unnest(string_to_array(teeth, ',')) "
                        "AS t(x) WHERE btrim(x) <> '' GROUP BY btrim(x) HAVING count(*) > 1)",
    "teeth_unsorted": r"SELECT count(*) FROM public.jaws WHERE teeth ~ '^[\d, ]+$' AND "
                      "(SELECT array_agg(btrim(x)::int ORDER BY n) FROM unnest(string_to_array(teeth, ',')) "
                      "WITH ORDINALITY AS t(x, n) WHERE btrim(x) <> '') <> "
                      "(SELECT array_agg(btrim(x)::int ORDER BY btrim(x)::int) FROM unnest(string_to_array(teeth, ',')) "
                      "AS t(x) WHERE btrim(x) <> '')",
    "teeth_empty_tokens": _teeth_tokens("btrim(x) = ''") + " AND teeth <> ''",
    "teeth_null": "SELECT count(*) FROM public.jaws WHERE teeth IS NULL",
    "teeth_empty": "SELECT count(*) FROM public.jaws WHERE teeth = ''",
    **{f"teeth_bad_token_{tok}": _teeth_tokens(f"btrim(x) = '{tok}'") for tok in ("19", "ab", "60")},
    "patient_ref_valid": "SELECT count(*) FROM public.jaws j JOIN public.patients p ON p.id = j.patient_ref",
    "patient_ref_nowhere": "SELECT count(*) FROM public.jaws WHERE patient_ref > (SELECT max(id) FROM public.patients)",
    "patient_ref_null": "SELECT count(*) FROM public.jaws WHERE patient_ref IS NULL",
    **{f"severity_{s}": f"SELECT count(*) FROM public.system_messages WHERE severity = '{s}'"
       for s in ("info", "warn", "error")},
    "severity_other_case": "SELECT count(*) FROM public.system_messages WHERE severity <> lower(severity)",
    "severity_padded": "SELECT count(*) FROM public.system_messages WHERE severity <> btrim(severity)",
    "severity_unknown": "SELECT count(*) FROM public.system_messages "
                        "WHERE lower(btrim(severity)) NOT IN ('info', 'warn', 'error')",
    "context_null": "SELECT count(*) FROM public.system_messages WHERE context IS NULL",
    "context_json_null": "SELECT count(*) FROM public.system_messages WHERE context = 'null'::jsonb",
    "context_object": "SELECT count(*) FROM public.system_messages WHERE jsonb_typeof(context) = 'object'",
    "system_messages_updated_at_null": "SELECT count(*) FROM public.system_messages WHERE updated_at IS NULL",
    "unicode_accents": "SELECT count(*) FROM public.patients WHERE first_name || last_name ~ '[À-ÿ]'",
    "unicode_cjk": r"SELECT count(*) FROM public.patients WHERE notes ~ '[\u3040-\u30ff\u4e00-\u9fff]'",
    "unicode_emoji": r"SELECT count(*) FROM public.patients WHERE notes ~ '[\U0001F300-\U0001FAFF]'",
    "large_notes": "SELECT count(*) FROM public.patients WHERE octet_length(notes) >= 100000",
    "doctor_of_quarantined_office": "SELECT count(*) FROM public.doctors d JOIN public.offices o ON o.id = d.office_id "
                                    "WHERE o.name ~ '^\\s*$'",
    "patient_of_quarantined_doctor": "SELECT count(*) FROM public.patients p JOIN public.doctors d ON d.id = p.doctor_id "
                                     "WHERE d.first_name ~ '^\\s*$'",
    "order_of_quarantined_patient": "SELECT count(*) FROM public.orders o JOIN public.patients p ON p.id = o.patient_id "
                                    "WHERE p.status NOT IN (0, 1, 2, 3, 9)",
    **{f"{t}_tie_group": f"SELECT count(*) FROM public.{t} WHERE updated_at = timestamptz '2023-06-15 12:00+00' "
       "HAVING count(*) >= 3" for t in TABLES},
    **{f"{t}_before_2020": f"SELECT count(*) FROM public.{t} WHERE updated_at < timestamptz '2020-01-01 00:00+00'"
       for t in TABLES},
    **{f"{t}_future": f"SELECT count(*) FROM public.{t} WHERE updated_at > now() + interval '1 day'" for t in TABLES},
}


def _scalar(url: str, query: str, params: dict | None = None):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params or {}).scalar()
    finally:
        engine.dispose()


def _fingerprints(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(sa.text(f"SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM public.{t} AS t")).scalar()
                    for t in TABLES}
    finally:
        engine.dispose()


def _order_number_collisions(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            numbers = Counter(n.strip().upper() for n in conn.execute(sa.text("SELECT order_no FROM public.orders")).scalars())
    finally:
        engine.dispose()
    return sorted(n for n, count in numbers.items() if count > 1)


@pytest.fixture(scope="module")
def seeded(pg_server):
    """One database seeded at SCALE (anchor: today), shared by the read-only tests of this module.

    Module-scoped (make_database is per test) so that the edge-case queries reuse one seed.
    """
    name = f"t{os.getpid()}_seed_shared"
    pg_server.ensure_database(name)
    messages: list[str] = []
    url = pg_server.url(name)
    counts = seed_legacy(url, scale=SCALE, progress=messages.append)
    yield url, counts, messages
    pg_server.drop_database(name)


def test_planned_counts_scale_linearly_with_a_floor():
    assert planned_counts(1.0) == dict(BASE_COUNTS)
    assert planned_counts(SCALE) == EXPECTED_AT_SCALE
    tiny = planned_counts(0.00001)
    assert all(n >= 10 for n in tiny.values())
    with pytest.raises(ValueError):
        planned_counts(0)


def test_counts_match_the_formula_and_the_tables(seeded):
    url, counts, _ = seeded
    assert counts == EXPECTED_AT_SCALE
    for table, expected in EXPECTED_AT_SCALE.items():
        assert _scalar(url, f"SELECT count(*) FROM public.{table}") == expected


def test_progress_names_every_table(seeded):
    _, _, messages = seeded
    for table in TABLES:
        assert any(table in m and "rows" in m for m in messages), messages


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_case_is_present(seeded, case):
    url, _, _ = seeded
    assert (_scalar(url, EDGE_CASES[case]) or 0) > 0, EDGE_CASES[case]


def test_timestamps_are_in_range_and_mostly_ordered(seeded):
    url, _, _ = seeded
    for table in TABLES:
        earliest = _scalar(url, f"SELECT min(created_at) FROM public.{table}")
        assert earliest >= datetime(2018, 1, 1, tzinfo=timezone.utc)
        ordered = _scalar(url, f"SELECT avg((updated_at >= created_at)::int) FROM public.{table} "
                               "WHERE updated_at IS NOT NULL")
        assert ordered > 0.95


def test_no_order_number_collisions_by_default(seeded):
    url, _, _ = seeded
    assert _order_number_collisions(url) == []


def test_collisions_flag_adds_colliding_pairs(make_database):
    url = make_database("seed_collide")
    counts = seed_legacy(url, scale=0.001, collisions=True)
    assert _order_number_collisions(url) == ["AB-100", "CD-200"]
    # one pair lies far apart: first and last batch of any batch size
    far = _scalar(url, "SELECT max(id) - min(id) FROM public.orders WHERE upper(btrim(order_no, E' \\t')) = 'CD-200'")
    assert far >= counts["orders"] - 100


def test_refuses_a_filled_database_unless_forced(make_database):
    url = make_database("seed_twice")
    seed_legacy(url, scale=0.001, random_seed=1)
    before = _fingerprints(url)
    with pytest.raises(SeedRefused) as refused:
        seed_legacy(url, scale=0.001, random_seed=2)
    assert sa.make_url(url).database in str(refused.value)
    assert "force" in str(refused.value)
    assert _fingerprints(url) == before
    counts = seed_legacy(url, scale=SCALE, random_seed=2, force=True)
    assert counts == EXPECTED_AT_SCALE
    assert _scalar(url, "SELECT count(*) FROM public.orders") == EXPECTED_AT_SCALE["orders"]
    assert _fingerprints(url)["patients"] != before["patients"]


def test_same_seed_same_data_other_seed_other_data(make_database):
    first, second, other = make_database("seed_a"), make_database("seed_b"), make_database("seed_c")
    seed_legacy(first, scale=SCALE, random_seed=7, anchor=ANCHOR)
    seed_legacy(second, scale=SCALE, random_seed=7, anchor=ANCHOR)
    seed_legacy(other, scale=SCALE, random_seed=8, anchor=ANCHOR)
    same, different = _fingerprints(first), _fingerprints(other)
    assert _fingerprints(second) == same
    # at this scale every office is a fixed edge-case row, the same for every seed
    assert [t for t in TABLES if same[t] == different[t]] == ["offices"]


def test_sequences_are_past_the_highest_id(seeded):
    url, counts, _ = seeded
    inserts = {
        "offices": "INSERT INTO public.offices (created_at, updated_at, name, is_active) VALUES (now(), now(), 'n', true)",
        "doctors": "INSERT INTO public.doctors (created_at, updated_at, office_id, first_name, last_name, specialty, "
                   "is_active) VALUES (now(), now(), 1, 'a', 'b', 'GP', true)",
        "patients": "INSERT INTO public.patients (created_at, updated_at, doctor_id, first_name, last_name, status) "
                    "VALUES (now(), now(), 1, 'a', 'b', 1)",
        "orders": "INSERT INTO public.orders (created_at, updated_at, patient_id, order_no, status, price) "
                  "VALUES (now(), now(), 1, 'NEW-1', 'draft', 1)",
        "jaws": "INSERT INTO public.jaws (created_at, updated_at, arch) VALUES (now(), now(), 'U')",
        "system_messages": "INSERT INTO public.system_messages (created_at, severity, code, body) "
                           "VALUES (now(), 'info', 'c', 'b')",
    }
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for table, insert in inserts.items():
                new_id = conn.execute(sa.text(insert + " RETURNING id")).scalar()
                assert new_id == counts[table] + 1, table
            conn.rollback()
    finally:
        engine.dispose()


def test_indexes_and_constraints_are_those_of_the_legacy_ddl(seeded, make_database):
    url, _, _ = seeded
    plain = make_database("seed_schema_only")
    engine = sa.create_engine(plain)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(resources.files("dbmig_pipeline").joinpath("sql", "legacy_schema.sql").read_text())
    finally:
        engine.dispose()

    def describe(db_url: str) -> tuple:
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                indexes = conn.execute(sa.text(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")).scalars().all()
                constraints = conn.execute(sa.text(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
                    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2")).all()
        finally:
            engine.dispose()
        return indexes, constraints

    assert describe(url) == describe(plain)


def test_generic_scripts_inline_every_helper(seeded):
    """A helper the planner does not inline runs as a function call per row: scale 1.0 would take minutes."""
    url, counts, _ = seeded
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(seed_module._sql("seed/prelude.sql"))
            for table in TABLES:
                params = seed_module._generic_params(table, counts, random_seed=1, t1=ANCHOR)
                plan = conn.execute(sa.text("EXPLAIN VERBOSE " + seed_module._sql(f"seed/{table}.sql")), params)
                assert not [line for line in plan.scalars() if "pg_temp." in line], table
            conn.rollback()
    finally:
        engine.dispose()
