"""The engine against real databases: MAPPING.md section 3 row by row, and the behaviour of section 4.

Every expectation about target content comes from the SQL oracle in
engine_helpers (never from the transforms), or is written out by hand.
"""
from __future__ import annotations

import platform
import re
import threading
from datetime import UTC, datetime

import pytest

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine import allocator
from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine.errors import IntegrityHalt
from dbmig_pipeline.engine.parked import ready_to_retry
from dbmig_pipeline.engine.exact_times import EXACT_COLUMN, attach, texts_by_id
from dbmig_pipeline.engine.extract import HASH_COLUMN, Window, fetch_batch, position_after
from dbmig_pipeline.engine.partitions import partitions_for
from dbmig_pipeline.engine import sync as sync_module
from dbmig_pipeline.engine.sync import DIFFERENTIAL, FULL, RunInfo, SyncStats, sync_entity
from dbmig_pipeline.entities import ENTITIES, ENTITY_NAMES, get_entity
from dbmig_pipeline_tests.integration.engine_helpers import (
    SPECS,
    assert_target_matches_oracle,
    error_row,
    insert,
    open_errors,
    oracle,
    pair_fixture,  # noqa: F401 (the `pair` fixture)
    target_ids,
    target_rows,
)

SCALE = 0.0002  # about 800 rows in all, every fixed edge case of the seed included
OLD = datetime(2019, 3, 1, tzinfo=UTC)  # before the first partition
TIE = datetime(2019, 12, 31, 12, 0, tzinfo=UTC)
LATER = datetime(2021, 1, 1, tzinfo=UTC)  # a partition after the first


# --- 1. full load ---------------------------------------------------------------

def test_full_load_of_a_seeded_source_matches_the_mapping_row_by_row(pair):
    counts = seed_legacy(pair.source_url, scale=SCALE)
    results = pair.run_all(mode=FULL)

    expected = assert_target_matches_oracle(pair)
    for entity in ENTITY_NAMES:
        stats, want = results[entity], expected[entity]
        assert isinstance(stats, SyncStats), f"{entity}: {stats}"
        assert stats.read == counts[entity]
        assert stats.written == len(want.loaded)
        assert stats.parked == len(want.parked)
        assert stats.quarantined == len(want.rejects)
        assert stats.batches > 1  # batch_size 7: several batches everywhere

    # The oracle is only as good as the cases in the data: the contract's named ones are there.
    assert expected["offices"].rejects[10] == "data_quality"  # name blank after trimming
    assert 2 in expected["doctors"].parked  # its office is quarantined
    assert expected["patients"].rejects[10] == "business_rule"  # status 7
    assert expected["patients"].rejects[22] == "data_quality"
    assert {2, 3} <= expected["patients"].parked
    assert {2, 4, 5} <= expected["orders"].parked  # patient 10 quarantined, patient 3 parked, patient 2 parked
    assert expected["orders"].rejects[13] == "data_quality"  # unknown status
    assert expected["orders"].rejects[17] == "business_rule"  # negative price
    assert expected["orders"].rejects[16] == "business_rule"  # negative aligner_count
    assert expected["orders"].rejects[27] == "data_quality"  # arches 'top'
    assert expected["jaws"].rejects.keys() >= {4, 5, 12, 13, 14}
    assert expected["system_messages"].rejects.keys() >= {8, 9, 19}

    # A few values written out by hand from MAPPING.md, independent of the oracle too.
    offices = target_rows(pair.dest, "offices")
    assert offices[2]["display_name"] == "Bright Smiles"
    assert offices[2]["email"] == "info@brightsmiles.com" and offices[2]["phone_e164"] == "+15551234567"
    assert offices[6]["address"] == {"line1": "1 Main St", "city": "Boston", "region": "CO",
                                     "postal_code": "62701", "country": "US"}
    assert offices[6]["email"] is None and offices[6]["phone_e164"] is None
    assert offices[7]["phone_e164"] == "+15551234567"
    doctors = target_rows(pair.dest, "doctors")
    assert [doctors[i]["specialty"] for i in (6, 7, 8, 9, 10)] == [
        "orthodontist", "general_dentist", "pediatric_dentist", "other", "other"]
    assert (doctors[5]["given_name"], doctors[5]["family_name"]) == ("Marta", "Lopez")
    patients = target_rows(pair.dest, "patients")
    assert (patients[23]["given_name"], patients[23]["family_name"]) == ("Émilie", "Müller")  # no-break spaces go
    assert patients[12]["date_of_birth"] is None and patients[13]["date_of_birth"] is None
    assert [patients[i]["sex"] for i in (15, 16, 17, 18, 19, 20, 21)] == [
        "male", "female", "unknown", "unknown", "male", "female", "unknown"]
    assert patients[28]["notes"] is None and patients[29]["notes"] == "padded note"
    assert patients[38]["email"] == "spaced@example.com" and patients[38]["phone_e164"] == "+15551234567"
    assert patients[39]["email"] is None and patients[39]["phone_e164"] is None
    orders = target_rows(pair.dest, "orders")
    assert orders[37]["order_number"] == "ORD-000000037"
    assert orders[14]["status"] == "shipped"
    assert orders[18]["price_cents"] == 123456 and orders[19]["price_cents"] == 1
    assert (orders[28]["arches"], orders[25]["arches"], orders[26]["arches"]) == ("upper", None, None)
    assert [orders[i]["is_rush"] for i in (23, 30, 31)] == [True, False, False]
    assert orders[33]["extra"] == {"material": "ClearX", "notes": "Größe ✓ 😀",
                                   "refinement": {"round": 2, "teeth": [11, 21]}}
    jaws = target_rows(pair.dest, "jaws")
    assert [jaws[i]["teeth"] for i in (7, 8, 9, 10, 11, 15, 16)] == [
        [11, 12, 21], [11, 21], [11, 12], [], [], [], [18, 48, 51, 55, 85]]
    assert jaws[18]["legacy_patient_id"] == counts["patients"] + 1000  # points nowhere, kept
    messages = target_rows(pair.dest, "system_messages")
    assert [messages[i]["severity"] for i in (3, 5, 6, 7)] == ["warning", "info", "warning", "error"]
    assert messages[10]["context"] == {} and messages[11]["context"] == {}
    assert messages[18]["code"] == "PAD_CODE"


# --- helpers for the hand-made data sets --------------------------------------

def base_rows(pair, *, patients: int, orders: int) -> None:
    """One office, one doctor, `patients` patients (the last nine, or all, tie on updated_at), `orders` orders."""
    insert(pair, "offices", [{"created_at": OLD, "updated_at": OLD, "name": "Office", "is_active": True}])
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": OLD, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "ORTHO", "is_active": True}])
    insert(pair, "patients", [
        {"created_at": OLD, "updated_at": TIE if i > patients - 9 else OLD.replace(hour=i % 24, day=1 + i // 24),
         "doctor_id": 1, "first_name": "Pat", "last_name": f"Patient {i}", "status": 1}
        for i in range(1, patients + 1)])
    insert(pair, "orders", [
        {"created_at": OLD, "updated_at": OLD.replace(minute=i), "patient_id": i, "order_no": f"o-{i}",
         "status": "draft", "price": "10.00", "details": '{"arches": "upper"}'}
        for i in range(1, orders + 1)])


def late_patient_with_order(pair, *, status: int) -> tuple[int, int]:
    """A new patient (with this legacy status) and an order of it, both just changed: (patient, order)."""
    patient = insert(pair, "patients", [{"created_at": OLD, "updated_at": datetime.now(UTC), "doctor_id": 1,
                                         "first_name": "Late", "last_name": "Parent", "status": status}])[0]
    order = insert(pair, "orders", [{"created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": patient,
                                     "order_no": f"late-{patient}", "status": "draft", "price": "1.00"}])[0]
    return patient, order


def test_rows_changed_while_the_first_load_runs_end_with_the_errors_and_warnings_of_their_last_version(pair):
    """A first load skips the ledger look-up of rows committed before it began; a row changed while it
    runs is read a second time, and that read must still clear what its first version left behind."""
    seed_legacy(pair.source_url, scale=SCALE)
    for parent in ("offices", "doctors"):
        pair.run(parent)
    before = oracle(pair.source)["patients"]
    contact = ("email", "phone_e164")
    warned = min(i for i, c in before.warned if c in contact and i in before.loaded)  # a contact warning
    quarantined = 10  # status 7: business_rule
    clean = min(before.loaded - {i for i, _ in before.warned})
    changed = (warned, quarantined, clean)
    # read first: the oldest cursors of the window
    pair.src("UPDATE patients SET updated_at = TIMESTAMPTZ '2020-01-01 00:00:01+00' + id * INTERVAL '1 ms' "
             "WHERE id = ANY(:ids)", ids=list(changed))
    fixed = []

    def change_after_first_batch(event) -> None:
        if not fixed:
            fixed.append(True)
            pair.src("UPDATE patients SET email = 'ok@example.com', phone = '555 010 0199', updated_at = now() "
                     "WHERE id = :i", i=warned)
            pair.src("UPDATE patients SET status = 1, updated_at = now() WHERE id = :i", i=quarantined)
            pair.src("UPDATE patients SET email = 'no-at-sign', updated_at = now() WHERE id = :i", i=clean)

    stats = pair.run("patients", on_progress=change_after_first_batch)

    total = pair.src("SELECT count(*) FROM patients")[0][0]
    assert stats.read == total + len(changed)  # each changed row was read twice in the pass
    expected = assert_target_matches_oracle(pair, ["offices", "doctors", "patients"])
    want = expected["patients"]
    assert quarantined in want.loaded and ("patients", quarantined) not in open_errors(pair, "patients")
    assert (clean, "email") in want.warned and not {(warned, c) for c in contact} & want.warned


def test_rows_dated_in_the_future_are_read_by_every_pass_and_stay_unchanged(pair):
    """Rows dated in the future lie after every saved cursor (it stops at the source's horizon), so every
    pass reads them again: a loaded, a quarantined and a parked one stay unchanged by their hashes (not
    rewritten, not counted or recorded again); a changed row beside them is written."""
    future = datetime(2100, 1, 1, tzinfo=UTC)
    insert(pair, "offices", [{"created_at": OLD, "updated_at": future, "name": n, "is_active": True}
                             for n in ("A", " ", "C")])  # office 2 quarantined (blank name)
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": future, "office_id": o, "first_name": "D",
                              "last_name": f"Doc {o}", "specialty": "GP", "is_active": True} for o in (1, 2, 3)])
    for entity in ("offices", "doctors"):
        pair.run(entity)
    assert open_errors(pair) == {("offices", 2): "data_quality", ("doctors", 2): "missing_parent"}
    written_at = pair.dst("SELECT legacy_id, synced_at FROM app.offices ORDER BY 1")
    recorded_at = pair.dst("SELECT entity, legacy_id, recorded_at FROM dbmig.row_ledger ORDER BY 1, 2")

    pair.src("UPDATE doctors SET last_name = 'Changed', updated_at = :t WHERE id = 3", t=future.replace(day=2))
    offices = pair.run("offices", mode=DIFFERENTIAL, run_id="run-2")
    doctors = pair.run("doctors", mode=DIFFERENTIAL, run_id="run-2")

    assert (offices.read, offices.written, offices.unchanged, offices.quarantined) == (3, 0, 3, 0)
    assert (doctors.read, doctors.written, doctors.unchanged, doctors.parked) == (3, 1, 2, 0)
    assert pair.dst("SELECT legacy_id, synced_at FROM app.offices ORDER BY 1") == written_at
    ledger_after = pair.dst("SELECT entity, legacy_id, recorded_at FROM dbmig.row_ledger ORDER BY 1, 2")
    assert [r for r in ledger_after if (r[0], r[1]) != ("doctors", 3)] == [
        r for r in recorded_at if (r[0], r[1]) != ("doctors", 3)]
    assert error_row(pair, "offices", 2, "data_quality")["attempts"] == 1
    assert error_row(pair, "doctors", 2, "missing_parent")["attempts"] == 1
    assert target_rows(pair.dest, "doctors")[3]["family_name"] == "Changed"


def test_each_partition_counts_the_rows_of_its_own_days(pair):
    """MAPPING.md §5: rows_written per entity and partition. A batch spanning two days credited all it
    wrote, left unchanged, parked or quarantined to its last day."""
    day1, day2 = datetime(2020, 1, 2, 9, tzinfo=UTC), datetime(2020, 1, 3, 9, tzinfo=UTC)
    insert(pair, "offices", [
        {"created_at": OLD, "updated_at": day1, "name": "A", "is_active": True},
        {"created_at": OLD, "updated_at": day1.replace(minute=1), "name": " ", "is_active": True},  # quarantined
        {"created_at": OLD, "updated_at": day1.replace(minute=2), "name": "C", "is_active": True},
        {"created_at": OLD, "updated_at": day2, "name": "D", "is_active": True}])
    pair.run("offices", batch_size=4)  # one batch, two days
    counters = """SELECT partition_key, rows_read, rows_written, rows_unchanged, rows_quarantined
                    FROM dbmig.migration_control WHERE entity = 'offices' AND rows_read > 0 ORDER BY 1"""
    assert pair.dst(counters) == [("2020-01-02", 3, 2, 0, 1), ("2020-01-03", 1, 1, 0, 0)]

    pair.run("offices", batch_size=4, run_id="run-2")  # a full re-run: the same rows, unchanged now
    assert pair.dst(counters) == [("2020-01-02", 6, 2, 3, 1), ("2020-01-03", 2, 1, 1, 0)]  # the quarantined row too


def test_progress_counts_up_to_the_rows_of_the_pass_whose_total_is_counted_alongside(pair):
    seed_legacy(pair.source_url, scale=SCALE)
    for parent in ("offices", "doctors"):
        pair.run(parent)
    events = []
    stats = pair.run("patients", on_progress=events.append)

    total = pair.src("SELECT count(*) FROM patients")[0][0]
    assert stats.read == total and len(events) == stats.batches > 1
    done = [e.done for e in events]
    assert done == sorted(set(done)) and done[-1] == total
    assert all(e.total in (0, total) for e in events)  # 0: not counted yet
    assert events[-1].total == total and f"{total:,} of {total:,} rows" in events[-1].describe()


def test_a_row_that_appears_in_the_target_while_the_first_load_runs_is_overwritten_not_a_collision(pair):
    """A first load writes its first reads with plain INSERTs; a row that is in the target after all
    (written by something other than the pass) sends the batch through the
    conflict-aware upsert instead of halting the entity as a key collision."""
    seed_legacy(pair.source_url, scale=SCALE)
    for parent in ("offices", "doctors"):
        pair.run(parent)
    # every row committed well before the pass (none is re-read), so every batch takes the plain INSERTs
    pair.src("UPDATE patients SET updated_at = TIMESTAMPTZ '2020-06-01' + id * INTERVAL '1 s' "
             "WHERE updated_at > now() - INTERVAL '1 day'")
    loaded = oracle(pair.source)["patients"].loaded
    in_cursor_order = [i for (i,) in pair.src("SELECT id FROM patients ORDER BY updated_at, id") if i in loaded]
    first, last = in_cursor_order[0], in_cursor_order[-1]
    planted = []

    def plant_the_last_row(event) -> None:
        if not planted:  # batch 1 (with `first`) is committed; `last` is batches away
            planted.append(True)
            pair.dst("INSERT INTO app.patients SELECT (jsonb_populate_record(NULL::app.patients, to_jsonb(p) || "
                     "jsonb_build_object('id', gen_random_uuid(), 'legacy_id', :last, "
                     "'source_updated_at', '2000-01-01T00:00:00Z'))).* FROM app.patients p WHERE legacy_id = :first",
                     first=first, last=last)

    stats = pair.run("patients", on_progress=plant_the_last_row)

    assert planted and stats.batches > 5
    assert_target_matches_oracle(pair, ["offices", "doctors", "patients"])  # the source's version won
    assert pair.dst("SELECT count(*) FROM app.patients WHERE legacy_id = :i", i=last) == [(1,)]



def test_an_entity_has_history_with_a_ledger_row_an_open_error_or_a_warning_of_its_own(pair):
    """What decides whether a pass may skip the ledger look-up of its first reads (decision 0006)."""
    def history() -> bool:
        conn = pair.dest.raw_connection()
        try:
            with conn.cursor() as cur:
                return bk.has_history(cur, "patients")
        finally:
            conn.close()

    # another entity's rows on both sides of 'patients' in every table, none of its own
    for entity in ("doctors", "system_messages"):
        pair.dst("INSERT INTO dbmig.row_ledger (entity, legacy_id, row_hash, outcome) "
                 "VALUES (:e, 1, gen_random_uuid(), 'loaded')", e=entity)
        pair.dst("INSERT INTO dbmig.row_errors (entity, legacy_id, category, detail) "
                 "VALUES (:e, 1, 'data_quality', 'x')", e=entity)
        pair.dst("INSERT INTO dbmig.row_warnings (entity, legacy_id, column_name, detail) "
                 "VALUES (:e, 1, 'email', 'x')", e=entity)
    pair.dst("INSERT INTO dbmig.row_errors (entity, legacy_id, category, detail, resolved_at) "
             "VALUES ('patients', 2, 'data_quality', 'x', now())")
    assert not history()  # a resolved error is no history

    pair.dst("INSERT INTO dbmig.row_errors (entity, legacy_id, category, detail) "
             "VALUES ('patients', 3, 'missing_parent', 'x')")
    assert history()
    pair.dst("UPDATE dbmig.row_errors SET resolved_at = now() WHERE entity = 'patients'")
    pair.dst("INSERT INTO dbmig.row_warnings (entity, legacy_id, column_name, detail) "
             "VALUES ('patients', 4, 'email', 'x')")
    assert history()
    pair.dst("DELETE FROM dbmig.row_warnings WHERE entity = 'patients'")
    pair.dst("INSERT INTO dbmig.row_ledger (entity, legacy_id, row_hash, outcome) "
             "VALUES ('patients', 5, gen_random_uuid(), 'parked')")
    assert history()


# --- 2. differential ------------------------------------------------------------

def test_differential_run_moves_exactly_the_changed_rows_and_ties_across_batches(pair):
    base_rows(pair, patients=20, orders=10)  # patients 12…20 tie: batches of 7 split them
    first = pair.run_all(mode=FULL)
    assert first["patients"].written == 20 and first["patients"].batches == 3
    assert_target_matches_oracle(pair)

    # One new timestamp for every change and insert: a 14-row tie that spans three batches.
    stamp = pair.src("SELECT date_trunc('second', now())")[0][0]
    pair.src("UPDATE patients SET last_name = last_name || ' (moved)', updated_at = :s WHERE id IN (3, 5, 13)", s=stamp)
    pair.src("UPDATE patients SET updated_at = :s WHERE id = 7", s=stamp)  # a touch: new version, same content
    new_patients = insert(pair, "patients", [
        {"created_at": stamp, "updated_at": stamp, "doctor_id": 1, "first_name": "New", "last_name": f"N{i}",
         "status": 0} for i in range(10)])
    pair.src("UPDATE orders SET price = 99.99, details = '{\"rush\": true}', updated_at = :s WHERE id = 2", s=stamp)
    new_order = insert(pair, "orders", [{"created_at": stamp, "updated_at": stamp, "patient_id": new_patients[-1],
                                         "order_no": " n-1 ", "status": "submitted", "price": "5.50"}])[0]

    second = pair.run_all(mode=DIFFERENTIAL, run_id="run-2")
    patients = second["patients"]
    # Re-read: the old tie group (minus 13, which moved) lies within the look-back of the saved cursor.
    assert (patients.read, patients.written, patients.unchanged) == (8 + 14, 14, 8)
    assert (patients.parked, patients.quarantined, patients.stale) == (0, 0, 0)
    assert patients.batches == 4
    orders = second["orders"]
    assert (orders.read, orders.written, orders.unchanged) == (6 + 2, 2, 6)  # orders 5…10 within the look-back
    for entity in ("offices", "doctors", "jaws", "system_messages"):
        assert second[entity].written == 0 and second[entity].unchanged == second[entity].read
    expected = assert_target_matches_oracle(pair)
    assert expected["patients"].loaded == set(range(1, 31))
    target = target_rows(pair.dest, "orders")
    assert target[new_order]["order_number"] == "N-1" and target[new_order]["parent"] == new_patients[-1]
    assert (target[2]["price_cents"], target[2]["is_rush"], target[2]["arches"]) == (9999, True, None)
    assert target_rows(pair.dest, "patients")[7]["source_updated_at"] == stamp

    # Nothing changed: a run over the newest partition only re-reads the new tie group and writes nothing.
    pair.src("UPDATE patients SET status = 2, updated_at = now() WHERE id = 4")
    third = pair.run("patients", mode=DIFFERENTIAL, run_id="run-3", keys=[pair.keys[-1]])
    assert (third.read, third.written, third.unchanged) == (15, 1, 14)
    assert target_rows(pair.dest, "patients")[4]["status"] == "in_treatment"
    again = pair.run_all(mode=DIFFERENTIAL, run_id="run-4")
    assert all(s.written == 0 and s.unchanged == s.read for s in again.values())



def test_a_rewritten_row_loses_its_old_warnings_even_if_the_ledger_look_up_missed_its_last_write(pair):
    """A row changed during a pass is read again by a later batch, whose ledger look-up can run (read
    ahead) before the batch that wrote its first version commits: the clean-up of old warnings must
    not depend on that look-up."""
    seed_legacy(pair.source_url, scale=SCALE)
    for entity in ("offices", "doctors", "patients"):
        pair.run(entity)
    warned = pair.dst("SELECT min(legacy_id) FROM dbmig.row_warnings WHERE entity = 'patients' "
                      "AND column_name = 'email'")[0][0]
    assert warned is not None
    pair.dst("DELETE FROM dbmig.row_ledger WHERE entity = 'patients' AND legacy_id = :i", i=warned)  # as if unseen
    pair.src("UPDATE patients SET email = 'fixed@example.com', updated_at = now() WHERE id = :i", i=warned)

    assert pair.run("patients", mode=DIFFERENTIAL, run_id="run-2").written >= 1

    assert pair.dst("SELECT column_name FROM dbmig.row_warnings WHERE entity = 'patients' AND legacy_id = :i",
                    i=warned) == []
    assert target_rows(pair.dest, "patients")[warned]["email"] == "fixed@example.com"


# --- 3. parent arrives later ------------------------------------------------------

def test_parked_child_loads_once_its_quarantined_parent_is_fixed(pair):
    base_rows(pair, patients=3, orders=3)
    pair.src("UPDATE patients SET status = 7 WHERE id = 2")  # quarantined, business_rule
    pair.run_all(mode=FULL)
    assert target_ids(pair, "orders") == {1, 3}
    assert open_errors(pair) == {("patients", 2): "business_rule", ("orders", 2): "missing_parent"}

    again = pair.run("orders", mode=DIFFERENTIAL, run_id="run-2")  # still no parent: not even re-read
    assert again.unparked == 0 and target_ids(pair, "orders") == {1, 3}
    still = error_row(pair, "orders", 2, "missing_parent")
    assert still["resolved_at"] is None and still["attempts"] == 1
    pair.src("UPDATE orders SET order_no = 'edited', updated_at = now() WHERE id = 2")
    edited = pair.run("orders", mode=DIFFERENTIAL, run_id="run-2b")  # changed in the source: read and parked again
    assert (edited.parked, edited.unparked) == (1, 0)
    assert error_row(pair, "orders", 2, "missing_parent")["attempts"] == 2

    pair.src("UPDATE patients SET status = 1, updated_at = now() WHERE id = 2")
    assert pair.run("patients", mode=DIFFERENTIAL, run_id="run-3").written == 1
    fixed = pair.run("orders", mode=DIFFERENTIAL, run_id="run-3")
    assert fixed.unparked == 1
    assert target_ids(pair, "orders") == {1, 2, 3}
    parked = error_row(pair, "orders", 2, "missing_parent")
    assert parked["resolved_at"] is not None and parked["attempts"] == 2  # kept, resolved, not deleted
    assert error_row(pair, "patients", 2, "business_rule")["resolved_at"] is not None
    assert open_errors(pair) == {}
    assert_target_matches_oracle(pair)


def test_only_parked_rows_whose_recorded_parent_arrived_are_retried(pair):
    base_rows(pair, patients=2, orders=2)
    pair.run_all(mode=FULL)
    # three new patients: the first loads, the other two are quarantined (unknown status 7)
    patients = insert(pair, "patients", [
        {"created_at": OLD, "updated_at": datetime.now(UTC), "doctor_id": 1, "first_name": "Late",
         "last_name": f"Parent {n}", "status": status} for n, status in enumerate([1, 7, 7])])
    orders = insert(pair, "orders", [
        {"created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": pid, "order_no": f"p-{n}",
         "status": "draft", "price": "1.00"} for n, pid in enumerate(patients)])
    first = pair.run("orders", mode=DIFFERENTIAL, run_id="run-2")  # before the patients run: all three parked
    assert first.parked == 3
    assert open_errors(pair, "orders") == {("orders", i): "missing_parent" for i in orders}
    waits_for = {i: (row["missing_parent_entity"], row["missing_parent_id"])
                 for i in orders for row in [error_row(pair, "orders", i, "missing_parent")]}
    assert waits_for == {o: ("patients", p) for o, p in zip(orders, patients)}

    pair.run("patients", mode=DIFFERENTIAL, run_id="run-3")  # the first parent arrives
    pair.src("DELETE FROM orders WHERE id = :i", i=orders[2])  # and one parked child leaves the source
    dst = pair.dest.raw_connection()
    try:
        with dst.cursor() as cur:
            ready = ready_to_retry(cur, get_entity("orders"), {s.name: s for s in ENTITIES})
    finally:
        dst.close()
    assert ready == [orders[0]]  # the source is not asked: the deleted row is reconciliation's

    later = pair.run("orders", mode=DIFFERENTIAL, run_id="run-3")
    assert later.unparked == 1 and orders[0] in target_ids(pair, "orders")
    assert open_errors(pair, "orders") == {("orders", orders[1]): "missing_parent",
                                           ("orders", orders[2]): "missing_parent"}
    assert error_row(pair, "orders", orders[1], "missing_parent")["attempts"] == 1  # its parent never came
    assert error_row(pair, "orders", orders[2], "missing_parent")["attempts"] == 1  # not re-read either


def test_a_parked_row_changed_to_another_missing_parent_waits_for_that_one(pair):
    base_rows(pair, patients=2, orders=2)
    pair.run_all(mode=FULL)
    late = insert(pair, "patients", [
        {"created_at": OLD, "updated_at": datetime.now(UTC), "doctor_id": 1, "first_name": "Late",
         "last_name": f"Parent {n}", "status": 1} for n in range(2)])
    order = insert(pair, "orders", [{"created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": late[0],
                                     "order_no": "moved", "status": "draft", "price": "1.00"}])[0]
    assert pair.run("orders", mode=DIFFERENTIAL, run_id="run-2").parked == 1
    pair.src("UPDATE orders SET patient_id = :p, updated_at = now() WHERE id = :o", p=late[1], o=order)
    assert pair.run("orders", mode=DIFFERENTIAL, run_id="run-3").parked == 1  # read again by the scan
    parked = error_row(pair, "orders", order, "missing_parent")
    assert (parked["missing_parent_entity"], parked["missing_parent_id"], parked["attempts"]) == ("patients", late[1], 2)
    assert str(late[1]) in parked["detail"]

    pair.run("patients", mode=DIFFERENTIAL, run_id="run-4")
    assert pair.run("orders", mode=DIFFERENTIAL, run_id="run-4").unparked == 1
    loaded = pair.dst("SELECT p.legacy_id FROM app.orders o JOIN app.patients p ON p.id = o.patient_id"
                      " WHERE o.legacy_id = :o", o=order)
    assert loaded == [(late[1],)]
    assert_target_matches_oracle(pair)


def test_rows_that_record_no_parent_of_their_entity_are_retried_once_then_wait(pair):
    """Rows parked before control schema version 4 record no parent; nor do rows parked for a parent
    the mapping no longer has. Both are retried, and park again waiting for their parent."""
    base_rows(pair, patients=2, orders=2)
    pair.run_all(mode=FULL)
    before_v4 = late_patient_with_order(pair, status=7)  # the patients are quarantined: never loaded
    old_parent = late_patient_with_order(pair, status=7)
    assert pair.run("orders", mode=DIFFERENTIAL, run_id="run-2").parked == 2
    pair.dst("UPDATE dbmig.row_errors SET missing_parent_entity = NULL, missing_parent_id = NULL"
             " WHERE entity = 'orders' AND legacy_id = :o", o=before_v4[1])
    pair.dst("UPDATE dbmig.row_errors SET missing_parent_entity = 'offices', missing_parent_id = 1"
             " WHERE entity = 'orders' AND legacy_id = :o", o=old_parent[1])  # office 1 is in the target

    assert pair.run("orders", mode=DIFFERENTIAL, run_id="run-3").unparked == 0  # retried, parked again
    for patient, order in (before_v4, old_parent):
        parked = error_row(pair, "orders", order, "missing_parent")
        assert (parked["missing_parent_entity"], parked["missing_parent_id"], parked["attempts"]) == (
            "patients", patient, 2)
    pair.run("orders", mode=DIFFERENTIAL, run_id="run-4")
    assert [error_row(pair, "orders", o, "missing_parent")["attempts"] for _, o in (before_v4, old_parent)] == [2, 2]


def test_child_run_before_its_parent_arrives_is_parked_then_loaded(pair):
    base_rows(pair, patients=2, orders=2)
    pair.run_all(mode=FULL)
    patient, order = late_patient_with_order(pair, status=1)

    child_first = pair.run("orders", mode=DIFFERENTIAL, run_id="run-2")  # the patients run has not happened yet
    assert (child_first.written, child_first.parked) == (0, 1)
    assert order not in target_ids(pair, "orders")
    assert open_errors(pair) == {("orders", order): "missing_parent"}

    pair.run("patients", mode=DIFFERENTIAL, run_id="run-3")
    later = pair.run("orders", mode=DIFFERENTIAL, run_id="run-3")
    assert later.unparked == 1
    loaded = pair.dst("SELECT p.legacy_id FROM app.orders o JOIN app.patients p ON p.id = o.patient_id"
                      " WHERE o.legacy_id = :o", o=order)
    assert loaded == [(patient,)]
    assert error_row(pair, "orders", order, "missing_parent")["resolved_at"] is not None
    assert_target_matches_oracle(pair)


# --- 4. no regression -------------------------------------------------------------

def test_an_older_source_version_never_overwrites_a_newer_target_row(pair):
    base_rows(pair, patients=2, orders=1)
    pair.run_all(mode=FULL)
    newer = datetime(2100, 1, 1, tzinfo=UTC)
    # A newer version of office 1 is already in the target (written by an overlapping run).
    pair.dst("UPDATE app.offices SET display_name = 'Newer', source_updated_at = :t WHERE legacy_id = 1", t=newer)
    pair.src("UPDATE offices SET name = 'Stale', updated_at = now() WHERE id = 1")

    stats = pair.run("offices", mode=DIFFERENTIAL, run_id="run-2")
    assert (stats.read, stats.written, stats.stale) == (1, 0, 1)
    row = target_rows(pair.dest, "offices")[1]
    assert (row["display_name"], row["source_updated_at"]) == ("Newer", newer)
    # The stale version is not recorded as migrated either: the ledger keeps the version that was loaded.
    assert pair.dst("SELECT source_updated_at FROM dbmig.row_ledger WHERE entity = 'offices' AND legacy_id = 1") == [
        (OLD,)]
    # Children still resolve to the same office row.
    assert pair.dst("SELECT count(*) FROM app.doctors d JOIN app.offices o ON o.id = d.office_id") == [(1,)]


# --- 5. order_number collision ------------------------------------------------------

def test_order_number_collision_stops_orders_until_fixed_then_resumes_without_clean_up(pair):
    counts = seed_legacy(pair.source_url, scale=SCALE / 2, collisions=True)
    last = counts["orders"]  # ' Cd-200\t' (id 45) and 'CD-200' (the last order) collide too, far apart
    results = pair.run_all(mode=FULL)

    halt = results["orders"]
    assert isinstance(halt, IntegrityHalt)
    assert re.search(r"\b43\b", str(halt)) and re.search(r"\b44\b", str(halt)) and "AB-100" in str(halt)
    assert {43, 44} <= set(halt.legacy_ids)
    for entity in ("offices", "doctors", "patients", "jaws", "system_messages"):
        assert isinstance(results[entity], SyncStats) and results[entity].written > 0, entity  # the others go on
    assert_failing_batch_not_written(pair, 44)
    assert {o[1] for o in open_errors(pair, "orders").items() if o[0][1] in (43, 44)} == {"integrity"}
    status = pair.dst("SELECT DISTINCT status FROM dbmig.migration_control WHERE entity = 'orders'"
                      " AND status <> 'succeeded'")
    assert status == [("failed",)]

    with pytest.raises(IntegrityHalt):  # not fixed: stays stopped
        pair.run("orders", mode=FULL, run_id="run-2")
    assert error_row(pair, "orders", 44, "integrity")["attempts"] == 2

    # Fix the first pair: the next run goes past it and stops at the second.
    pair.src("UPDATE orders SET order_no = 'AB-100-B', updated_at = now() WHERE id = 44")
    with pytest.raises(IntegrityHalt) as second:
        pair.run("orders", mode=FULL, run_id="run-3")
    assert set(second.value.legacy_ids) == {45, last}
    assert_failing_batch_not_written(pair, last)

    pair.src("UPDATE orders SET order_no = 'CD-200-B', updated_at = now() WHERE id = :i", i=last)
    fixed = pair.run("orders", mode=FULL, run_id="run-4")
    assert fixed.written > 0
    assert_target_matches_oracle(pair, ["orders"])
    integrity = pair.dst("SELECT legacy_id, resolved_at IS NOT NULL FROM dbmig.row_errors"
                         " WHERE entity = 'orders' AND category = 'integrity' ORDER BY legacy_id")
    assert integrity == [(43, True), (44, True), (45, True), (last, True)]
    assert pair.dst("SELECT DISTINCT status FROM dbmig.migration_control WHERE entity = 'orders'") == [("succeeded",)]


@pytest.mark.parametrize("writers", [1, 2])
def test_a_number_handed_over_between_two_orders_is_loaded_with_the_order_that_gave_it_up(pair, writers):
    """Order 1 takes o-2 while order 2 moves on to o-3, in separate batches: the batch of order 1 meets
    o-2 still held in the target, reads order 2 again from the source and writes both, giver first."""
    base_rows(pair, patients=3, orders=3)
    pair.run_all(mode=FULL)
    # order 2 gives o-2 up first, but with the later timestamp: order 1's batch comes first
    pair.src("UPDATE orders SET order_no = 'o-3b', updated_at = now() + interval '1 second' WHERE id = 2")
    pair.src("UPDATE orders SET order_no = 'o-2', updated_at = now() WHERE id = 1")
    synced = pair.run("orders", mode=DIFFERENTIAL, run_id="run-2", batch_size=1, writers=writers)
    assert synced.written >= 2
    numbers = dict(pair.dst("SELECT legacy_id, order_number FROM app.orders ORDER BY legacy_id"))
    assert numbers == {1: "O-2", 2: "O-3B", 3: "O-3"}
    assert open_errors(pair, "orders") == {}
    assert_target_matches_oracle(pair, ["orders"])


@pytest.mark.parametrize("handover", ["swap", "chain"])
def test_orders_that_hand_their_numbers_over_within_one_batch_are_loaded(pair, handover):
    """A unique key is checked row by row inside the upsert: two orders that swap their numbers (in any
    order one of them meets its new number still held), or pass one along with the taker written first
    (same timestamp, lower id), stopped orders for good although the source never repeats a number."""
    base_rows(pair, patients=3, orders=3)
    pair.run_all(mode=FULL)
    if handover == "swap":
        # one source transaction (the legacy order_no is unique too), both rows with one timestamp
        pair.src("UPDATE orders SET order_no = 'tmp', updated_at = now() WHERE id = 1;"
                 " UPDATE orders SET order_no = 'o-1', updated_at = now() WHERE id = 2;"
                 " UPDATE orders SET order_no = 'o-2', updated_at = now() WHERE id = 1")
        want = {1: "O-2", 2: "O-1", 3: "O-3"}
    else:  # order 1 takes o-2 while order 2 takes o-3 from order 3, which moves on to o-4
        pair.src(" ".join(f"UPDATE orders SET order_no = 'o-{i + 1}', updated_at = now() WHERE id = {i};"
                          for i in (3, 2, 1)))
        want = {1: "O-2", 2: "O-3", 3: "O-4"}
    synced = pair.run("orders", mode=DIFFERENTIAL, run_id="run-2")
    assert (synced.written, synced.stale) == (len(want) if handover == "chain" else 2, 0)
    assert dict(pair.dst("SELECT legacy_id, order_number FROM app.orders")) == want
    assert open_errors(pair, "orders") == {}
    assert_target_matches_oracle(pair, ["orders"])


def test_a_key_set_aside_is_read_after_a_concurrent_writer_of_the_row_commits(pair, monkeypatch):
    """Two writers of one pass: batch A holds an older version of order 1 (o-9) among a swap, batch B its
    newer one (o-7), committed while A sets keys aside. A keeps B's version (stale) and must give order 1
    back B's number, not the one it had before either batch."""
    base_rows(pair, patients=3, orders=3)
    pair.run_all(mode=FULL)
    pair.src("UPDATE orders SET order_no = 'o-9', updated_at = now() WHERE id = 1;"
             " UPDATE orders SET order_no = 'tmp' WHERE id = 2;"
             " UPDATE orders SET order_no = 'o-2', updated_at = now() WHERE id = 3;"
             " UPDATE orders SET order_no = 'o-3', updated_at = now() WHERE id = 2")
    set_aside = sync_module.set_changing_keys_aside
    writer_b = pair.dest.raw_connection()

    def while_batch_b_writes(cur, spec, rows):
        pair.src("UPDATE orders SET order_no = 'o-7', updated_at = now() + interval '1 hour' WHERE id = 1")
        with writer_b.cursor() as b:
            b.execute("UPDATE app.orders SET order_number = 'O-7', source_updated_at = now() + interval '1 hour'"
                      " WHERE legacy_id = 1")
        threading.Timer(1.0, writer_b.commit).start()  # while A waits for the row
        return set_aside(cur, spec, rows)

    monkeypatch.setattr(sync_module, "set_changing_keys_aside", while_batch_b_writes)
    try:
        stats = pair.run("orders", mode=DIFFERENTIAL, run_id="run-2")
    finally:
        writer_b.close()
    assert stats.stale == 1
    assert dict(pair.dst("SELECT legacy_id, order_number FROM app.orders")) == {1: "O-7", 2: "O-3", 3: "O-2"}


def test_a_number_given_up_only_by_an_older_version_stops_orders_naming_both_rows(pair):
    """The handover is undone for a row the upsert does not write (its target version is newer): the
    number it would have given up is still its own, so the batch is a real collision."""
    base_rows(pair, patients=3, orders=3)
    pair.run_all(mode=FULL)
    # A newer version of order 2 (still o-2) is already in the target, written by an overlapping run.
    pair.dst("UPDATE app.orders SET source_updated_at = '2100-01-01' WHERE legacy_id = 2")
    pair.src("UPDATE orders SET order_no = 'o-9', updated_at = now() WHERE id = 2;"
             " UPDATE orders SET order_no = 'o-2', updated_at = now() WHERE id = 1")
    before = dict(pair.dst("SELECT legacy_id, order_number FROM app.orders"))

    with pytest.raises(IntegrityHalt) as halt:
        pair.run("orders", mode=DIFFERENTIAL, run_id="run-2")
    assert "O-2" in str(halt.value) and "legacy ids 1, 2" in str(halt.value)
    assert set(halt.value.legacy_ids) == {1, 2}
    assert dict(pair.dst("SELECT legacy_id, order_number FROM app.orders")) == before  # nothing half-written
    assert not pair.dst("SELECT 1 FROM app.orders WHERE order_number LIKE ' %'")


def assert_order_1_gave_o_1_to_order_2(pair, held_as: str) -> None:
    """Order 1 (held as `held_as`) kept its loaded version with o-1 released; order 2 has o-1; the
    unrelated change of order 3 went through."""
    numbers = dict(pair.dst("SELECT legacy_id, order_number FROM app.orders"))
    assert numbers[2] == "O-1" and numbers[1] == "O-1 (released: legacy id 1 changed it in the source)"
    assert pair.dst("SELECT status FROM app.orders WHERE legacy_id = 3") == [("shipped",)]
    assert open_errors(pair, "orders") == {("orders", 1): held_as}
    assert pair.dst("SELECT details->'legacy_ids' FROM dbmig.audit_log WHERE operation = 'keys_released'") == [([1],)]


@pytest.mark.parametrize("mode", [DIFFERENTIAL, FULL])
def test_a_quarantined_order_gives_up_the_number_it_no_longer_has_and_orders_go_on(pair, mode):
    """Order 1 moves to o-9 with a negative price (quarantined; its loaded version stays), order 2 takes
    o-1. The source has no duplicate (MAPPING.md §3: the quarantined row is recorded and every other row
    goes on): order 1's target row gives o-1 up, order 2 and the rest load; fixed, order 1 takes o-9.
    A quarantined order that keeps its number in the source still collides."""
    base_rows(pair, patients=4, orders=4)
    pair.run_all(mode=FULL)
    pair.src("UPDATE orders SET order_no = 'o-9', price = -1, updated_at = now() WHERE id = 1;"
             " UPDATE orders SET order_no = 'o-1', updated_at = now() WHERE id = 2;"
             " UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = 3")

    assert pair.run("orders", mode=mode, run_id="run-2").quarantined == 1
    assert_order_1_gave_o_1_to_order_2(pair, "business_rule")

    pair.src("UPDATE orders SET price = 1, updated_at = now() WHERE id = 1")
    pair.run("orders", mode=DIFFERENTIAL, run_id="run-3")
    assert dict(pair.dst("SELECT legacy_id, order_number FROM app.orders"))[1] == "O-9"
    assert open_errors(pair, "orders") == {}

    pair.src("UPDATE orders SET price = -1, updated_at = now() WHERE id = 4;"
             " INSERT INTO orders (created_at, updated_at, patient_id, order_no, status, price)"
             " VALUES (now(), now(), 1, ' O-4 ', 'draft', 1)")
    with pytest.raises(IntegrityHalt, match="legacy ids 4, 5"):
        pair.run("orders", mode=DIFFERENTIAL, run_id="run-4")


@pytest.mark.parametrize("mode", [DIFFERENTIAL, FULL])
def test_a_parked_order_gives_up_the_number_it_no_longer_has_and_orders_go_on(pair, mode):
    """Order 1 moves to o-9 and to a patient not yet in the target (parked); order 2 takes o-1. The
    source has no duplicate (MAPPING.md §3, §4: a parked child waits, every other row goes on): the
    target row of order 1 keeps its old version with o-1 released, order 2 and the rest load, and
    order 1 takes o-9 once its patient arrives."""
    base_rows(pair, patients=3, orders=3)
    pair.run_all(mode=FULL)
    late = insert(pair, "patients", [{"created_at": OLD, "updated_at": datetime.now(UTC), "doctor_id": 1,
                                      "first_name": "Late", "last_name": "Parent", "status": 7}])[0]  # quarantined
    pair.src("UPDATE orders SET order_no = 'o-9', patient_id = :p, updated_at = now() WHERE id = 1;"
             " UPDATE orders SET order_no = 'o-1', updated_at = now() WHERE id = 2;"
             " UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = 3", p=late)
    pair.run("patients", mode=DIFFERENTIAL, run_id="run-2")

    assert pair.run("orders", mode=mode, run_id="run-2").parked == 1
    assert_order_1_gave_o_1_to_order_2(pair, "missing_parent")

    pair.src("UPDATE patients SET status = 1, updated_at = now() WHERE id = :p", p=late)
    pair.run("patients", mode=DIFFERENTIAL, run_id="run-3")
    pair.run("orders", mode=DIFFERENTIAL, run_id="run-3")
    assert dict(pair.dst("SELECT legacy_id, order_number FROM app.orders"))[1] == "O-9"
    assert open_errors(pair, "orders") == {}


def assert_failing_batch_not_written(pair, halted: int, batch_size: int = 7):
    """The batch after the last committed cursor, which holds the halting row, left nothing in the target."""
    cursor = pair.dst("SELECT cursor_updated_at, cursor_id FROM dbmig.migration_control WHERE entity = 'orders'"
                      " AND cursor_id IS NOT NULL ORDER BY cursor_updated_at DESC, cursor_id DESC LIMIT 1")[0]
    failing = pair.src("SELECT id FROM orders WHERE (updated_at, id) > (:ts, :id) ORDER BY updated_at, id LIMIT :n",
                       ts=cursor[0], id=cursor[1], n=batch_size)
    failing = {i for (i,) in failing}
    assert halted in failing
    assert target_ids(pair, "orders").isdisjoint(failing)
    # Target and ledger agree: every loaded row was recorded in the same transaction, and nothing else was.
    loaded = pair.dst("SELECT legacy_id FROM dbmig.row_ledger WHERE entity = 'orders' AND outcome = 'loaded'")
    assert {i for (i,) in loaded} == target_ids(pair, "orders")


# --- 6. NULL updated_at -------------------------------------------------------------

def test_system_messages_without_updated_at_are_migrated_across_batches(pair):
    insert(pair, "system_messages", [
        {"created_at": OLD, "updated_at": None if i % 4 else OLD, "severity": "warn", "code": f"C{i}",
         "body": f" body {i} ", "context": None if i % 2 else '{"i": %d}' % i} for i in range(1, 13)])
    nulls = {i for i in range(1, 13) if i % 4}
    stats = pair.run("system_messages", mode=FULL, batch_size=4)  # nine NULL rows: three batches of them
    assert (stats.read, stats.written) == (12, 12)
    rows = target_rows(pair.dest, "system_messages")
    assert {i for i, r in rows.items() if r["source_updated_at"] is None} == nulls
    assert rows[1]["body"] == "body 1" and rows[1]["severity"] == "warning" and rows[1]["context"] == {}
    assert_target_matches_oracle(pair, ["system_messages"])

    added = insert(pair, "system_messages", [{"created_at": OLD, "updated_at": None, "severity": "info",
                                              "code": "LATE", "body": "late"}])[0]
    again = pair.run("system_messages", mode=FULL, batch_size=4, run_id="run-2")
    assert (again.read, again.written, again.unchanged) == (13, 1, 12)
    assert added in target_ids(pair, "system_messages")


def _within(seconds: float, action):
    """`action()`'s result, or a failure (not a hung suite) when it runs longer than `seconds`."""
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(action()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s: a keyset pass that does not advance?"
    return outcome[0]


def test_rows_with_ids_of_zero_or_below_are_read_whatever_their_cursor(pair):
    """A serial column takes explicit ids of 0 and below. The pass over NULL-cursor rows started after id 0
    and a position before a cursor value's rows used id 0 too: such rows were never moved by `migrate`."""
    ids = insert(pair, "system_messages", [
        {"id": i, "created_at": OLD, "updated_at": updated, "severity": "info", "code": f"Z{i}", "body": "b"}
        for i, updated in ((0, None), (-7, None), (5, None), (-2147483648, OLD), (-3, OLD), (2, OLD))])
    stats = pair.run("system_messages", mode=FULL, batch_size=2)
    assert (stats.read, stats.written) == (6, 6)
    assert target_ids(pair, "system_messages") == set(ids)

    # a differential run from the saved cursor (no look-back) reads the rows at that cursor before id 0 too
    insert(pair, "system_messages", [{"id": -9, "created_at": OLD, "updated_at": LATER, "severity": "info",
                                      "code": "LATE", "body": "b"}])
    pair.src("UPDATE public.system_messages SET updated_at = :t WHERE id = -3", t=LATER)
    again = pair.run("system_messages", mode=DIFFERENTIAL, batch_size=2, run_id="run-2")
    assert again.written == 2 and target_ids(pair, "system_messages") == {*ids, -9}
    assert_target_matches_oracle(pair, ["system_messages"])


@pytest.mark.parametrize("extreme", ["-infinity", "infinity", "0001-01-01 00:00:00+00"])
def test_rows_at_the_ends_of_time_are_each_migrated_once_and_the_cursor_saved_exactly(pair, extreme):
    """psycopg2 reads PostgreSQL's ±infinity as datetime.max/min: pages after them must still advance (they
    read the infinite rows again forever) and not skip the rest of their ties (-infinity: rows were lost)."""
    ids = insert(pair, "system_messages", [
        *[{"created_at": OLD, "updated_at": extreme, "severity": "warn", "code": f"X{i}", "body": "b"} for i in range(3)],
        {"created_at": OLD, "updated_at": None, "severity": "info", "code": "N", "body": "b"}])
    stats = _within(60, lambda: pair.run("system_messages", mode=FULL, batch_size=2))  # ties across pages
    assert (stats.read, stats.written) == (4, 4)
    assert target_ids(pair, "system_messages") == set(ids)
    if extreme == "-infinity":  # saved as itself, not as the year-1 instant psycopg2 reads it as
        assert pair.dst("SELECT cursor_updated_at::text FROM dbmig.migration_control WHERE entity = 'system_messages'"
                        " AND partition_key = :k", k=pair.keys[0]) == [("-infinity",)]

    # A differential run starts from those cursors (no look-back before the year 1) and moves what is new.
    added = insert(pair, "system_messages", [{"created_at": OLD, "updated_at": datetime.now(UTC), "severity": "info",
                                              "code": "NEW", "body": "new"}])[0]
    again = _within(60, lambda: pair.run("system_messages", mode=DIFFERENTIAL, batch_size=2, run_id="run-2"))
    assert again.written == 1
    assert target_ids(pair, "system_messages") == {*ids, added}
    assert_target_matches_oracle(pair, ["system_messages"])


def test_years_python_cannot_hold_neither_stop_the_pass_nor_lose_a_row(pair):
    """A birth date typed as 20201-05-03 (PostgreSQL holds it, Python's date stops at 9999) failed the
    whole pass; read as the last day it maps by the rules: after the row's creation, so NULL with a
    warning. Timestamps beyond 9999 or before year 1 (BC) keep their rows and the keyset advancing."""
    insert(pair, "offices", [{"created_at": OLD, "updated_at": OLD, "name": "Office", "is_active": True}])
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": OLD, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "ORTHO", "is_active": True}])
    patients = insert(pair, "patients", [
        {"created_at": OLD, "updated_at": OLD, "doctor_id": 1, "first_name": "Pat", "last_name": name,
         "birth_date": born, "status": 1}
        for name, born in (("Normal", "1990-05-03"), ("Typo", "20201-05-03"), ("Ancient", "0044-03-15 BC"))])
    messages = insert(pair, "system_messages", [
        {"created_at": created, "updated_at": updated, "severity": "info", "code": f"Y{i}", "body": "b"}
        for i, (created, updated) in enumerate([("0044-01-01 00:00:00+00 BC", OLD), *[
            (OLD, "20201-01-01 00:00:00+00")] * 3])])
    for entity in ("offices", "doctors"):
        pair.run(entity, mode=FULL)
    stats = pair.run("patients", mode=FULL)
    assert (stats.read, stats.written, stats.quarantined) == (3, 3, 0)
    born = {i: r["date_of_birth"] for i, r in target_rows(pair.dest, "patients").items()}
    assert born[patients[0]].isoformat() == "1990-05-03" and born[patients[1]] is None
    assert pair.dst("SELECT legacy_id, column_name FROM dbmig.row_warnings WHERE entity = 'patients'") == [
        (patients[1], "date_of_birth")]
    stats = _within(60, lambda: pair.run("system_messages", mode=FULL, batch_size=2))
    assert (stats.read, stats.written) == (4, 4)
    assert target_ids(pair, "system_messages") == set(messages)


def test_dates_and_timestamps_python_cannot_hold_are_copied_exactly(pair):
    """`created_at`, `updated_at`, birth dates and an order's dates are copied (MAPPING.md §3): ±infinity,
    a BC date and a year after 9999 were stored as the ends of Python's range (9999-12-31 …)."""
    ends = ("infinity", "-infinity", "20201-05-03 10:00:00+00", "0044-03-15 12:00:00+00 BC",
            "9999-12-31 23:59:59.999999+00", "0001-01-01 00:00:00+00")
    insert(pair, "offices", [{"created_at": "-infinity", "updated_at": "infinity", "name": "Office",
                              "is_active": True}])
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": OLD, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "ORTHO", "is_active": True}])
    births = ("0044-03-15 BC", "-infinity", "infinity", "20201-05-03", "0001-01-01", "1990-05-03")
    patients = insert(pair, "patients", [
        {"created_at": created, "updated_at": OLD, "doctor_id": 1, "first_name": "Pat", "last_name": "P",
         "birth_date": born, "status": 1} for created, born in zip((OLD, OLD, OLD, OLD, OLD, "infinity"), births)])
    insert(pair, "orders", [
        {"created_at": created, "updated_at": updated, "patient_id": patients[-1], "order_no": f"x-{i}",
         "status": "shipped", "price": "1.00", "submitted_at": submitted, "shipped_at": ends[(i + 3) % len(ends)]}
        for i, (created, updated, submitted) in enumerate(zip(ends, reversed(ends), ends[2:] + ends[:2]))])
    insert(pair, "system_messages", [
        {"created_at": created, "updated_at": updated, "severity": "info", "code": f"E{i}", "body": "b"}
        for i, (created, updated) in enumerate(zip(ends, (*ends[1:], None)))])
    pair.run_all(mode=FULL, batch_size=2)

    for entity, extra in (("offices", ""), ("orders", ", submitted_at::text, shipped_at::text"),
                          ("system_messages", "")):
        source = pair.src(f"SELECT id, created_at::text, updated_at::text{extra} FROM public.{entity} ORDER BY id")
        target = pair.dst(f"SELECT legacy_id, created_at::text, source_updated_at::text{extra} FROM app.{entity}"
                          " ORDER BY legacy_id")
        assert target == source, entity
    assert pair.dst("SELECT legacy_id, date_of_birth::text FROM app.patients ORDER BY legacy_id") == [
        (i, born) for i, born in zip(patients, ("0044-03-15 BC", "-infinity", None, None, "0001-01-01", "1990-05-03"))]
    assert pair.dst("SELECT legacy_id FROM dbmig.row_warnings WHERE entity = 'patients' ORDER BY 1") == [
        (patients[2],), (patients[3],)]  # after creation: NULL with a warning (the last one, created at infinity, is not)
    assert pair.dst("SELECT source_updated_at::text FROM dbmig.row_ledger WHERE entity = 'offices'") == [("infinity",)]

    # Unchanged: nothing written again; changed: written exactly again.
    assert pair.run("system_messages", mode=FULL, run_id="run-2").written == 0
    pair.src("UPDATE public.orders SET status = 'delivered'")
    assert pair.run("orders", mode=FULL, run_id="run-3").written == len(ends)
    assert pair.dst("SELECT legacy_id, created_at::text, source_updated_at::text, submitted_at::text, shipped_at::text"
                    " FROM app.orders ORDER BY legacy_id") == pair.src(
        "SELECT id, created_at::text, updated_at::text, submitted_at::text, shipped_at::text FROM public.orders"
        " ORDER BY id")


def test_a_row_changed_before_its_exact_dates_are_asked_keeps_the_page_version(pair):
    """The exact text of an infinite value is asked after the page was read: a row changed in between
    must not lend its new text to the old version (the new one is read again and written then)."""
    insert(pair, "system_messages", [{"created_at": "infinity", "updated_at": OLD, "severity": "info",
                                      "code": "A", "body": "b"}])
    spec, conn = SPECS["system_messages"], pair.source.raw_connection()
    try:
        with conn.cursor() as cur:
            page = fetch_batch(cur, spec, Window(None, None), None, 10)
            assert texts_by_id(page) == {1: {"created_at": "infinity"}}
            pair.src("UPDATE public.system_messages SET created_at = '-infinity'")
            assert texts_by_id(attach(cur, spec, page.drop(columns=EXACT_COLUMN), HASH_COLUMN)) == {}
        conn.commit()
    finally:
        conn.close()


def test_json_numbers_reach_the_target_exactly_as_the_source_holds_them(pair):
    """`extra` is `details` without two keys and `context` is copied: a number a double cannot hold
    (more than ~15 digits, beyond 1e308) was rounded or written as null."""
    details = ('{"arches": "upper", "rush": true, "ratio": 0.12345678901234567890, "huge": 1e400,'
               ' "id": 12345678901234567.5, "kept": 1.10, "nested": [{"tiny": -1e-400}]}')
    context = '{"amount": 99999999999999999.99, "plain": 2.5}'
    insert(pair, "offices", [{"created_at": OLD, "updated_at": OLD, "name": "Office", "is_active": True}])
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": OLD, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "ORTHO", "is_active": True}])
    insert(pair, "patients", [{"created_at": OLD, "updated_at": OLD, "doctor_id": 1, "first_name": "Pat",
                               "last_name": "Patient", "status": 1}])
    order = insert(pair, "orders", [{"created_at": OLD, "updated_at": OLD, "patient_id": 1, "order_no": "j-1",
                                     "status": "draft", "price": "1.00", "details": details}])[0]
    message = insert(pair, "system_messages", [{"created_at": OLD, "updated_at": OLD, "severity": "info",
                                                "code": "J", "body": "b", "context": context}])[0]
    pair.run_all(mode=FULL)
    assert pair.dst("SELECT extra = CAST(:d AS jsonb) - 'arches' - 'rush', extra ->> 'ratio',"
                    " (extra ->> 'huge')::numeric = 1e400 FROM app.orders WHERE legacy_id = :i", d=details, i=order) == [
        (True, "0.12345678901234567890", True)]
    assert pair.dst("SELECT context = CAST(:c AS jsonb) FROM app.system_messages WHERE legacy_id = :i",
                    c=context, i=message) == [(True,)]


def test_a_cursor_saved_before_the_year_1_is_read_back_and_the_next_run_goes_on(pair):
    """psycopg2 cannot read a BC timestamp back from the control table: every later run died there."""
    ids = insert(pair, "system_messages", [
        {"created_at": OLD, "updated_at": "0044-01-01 00:00:00+00 BC", "severity": "info", "code": "A", "body": "b"},
        {"created_at": OLD, "updated_at": LATER, "severity": "info", "code": "B", "body": "b"}])
    # a page ends on the BC row, the last of the first partition, whose cursor it stays
    assert pair.run("system_messages", mode=FULL, batch_size=1).read == 2
    again = pair.run("system_messages", mode=DIFFERENTIAL, batch_size=1, run_id="run-2")
    assert again.written == 0 and target_ids(pair, "system_messages") == set(ids)


def test_a_page_whose_last_row_changed_before_its_position_was_asked_skips_nothing(pair):
    """The exact value of a page's last `-infinity` row is asked after the page was read: if the row is
    gone (or bumped) by then, the next page still holds every `-infinity` row after it."""
    insert(pair, "system_messages", [
        {"created_at": OLD, "updated_at": "-infinity", "severity": "info", "code": f"X{i}", "body": "b"}
        for i in range(3)])
    spec, conn = SPECS["system_messages"], pair.source.raw_connection()
    try:
        with conn.cursor() as cur:
            page = fetch_batch(cur, spec, Window(None, None), None, 2)
        conn.commit()
        pair.src("DELETE FROM public.system_messages WHERE id = :i", i=int(page.iloc[-1]["id"]))
        position = position_after(conn, spec, page, None)
        with conn.cursor() as cur:
            rest = fetch_batch(cur, spec, Window(None, None), position, 2)
        conn.commit()
    finally:
        conn.close()
    assert len(rest) == 1


def test_bc_birth_dates_are_masked_without_stopping_the_pass(pair):
    insert(pair, "offices", [{"created_at": OLD, "updated_at": OLD, "name": "Office", "is_active": True}])
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": OLD, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "ORTHO", "is_active": True}])
    ids = insert(pair, "patients", [
        {"created_at": OLD, "updated_at": OLD, "doctor_id": 1, "first_name": "Pat", "last_name": name,
         "birth_date": born, "status": 1} for name, born in (("Old", "0044-03-15 BC"), ("Normal", "1990-05-03"))])
    for entity in ("offices", "doctors"):
        pair.run(entity, mode=FULL)
    for key in (b"key1", b"key2", b"key3"):  # the shift's direction depends on the key
        run = RunInfo(f"run-{key.decode()}", "pytest", mode=FULL, batch_size=7, mask_key=key)
        sync_entity(pair.source, pair.dest, SPECS["patients"], SPECS, partitions_for(pair.keys, pair.keys),
                    pair.keys, run)
        assert target_ids(pair, "patients") == set(ids)


@pytest.mark.parametrize("document", ["[" * 300 + "]" * 300, "1e5000", "[" + "7" * 5000 + "]"])
def test_json_that_json_itself_can_write_is_written(pair, document):
    """Deep nesting orjson refuses, and integers beyond int()'s digit limit, as the source holds them."""
    message = insert(pair, "system_messages", [{"created_at": OLD, "updated_at": OLD, "severity": "info",
                                                "code": "D", "body": "b", "context": '{"x": %s}' % document}])[0]
    assert pair.run("system_messages", mode=FULL).written == 1
    assert pair.dst("SELECT context = CAST(:c AS jsonb) FROM app.system_messages WHERE legacy_id = :i",
                    c='{"x": %s}' % document, i=message) == [(True,)]


@pytest.mark.parametrize("row_path", [False, True], ids=["copy", "rows"])
def test_json_nested_deeper_than_python_reads_stops_only_its_own_row(pair, row_path, monkeypatch):
    """A valid jsonb nested 1,000 levels deep raised RecursionError and failed the entity at every run.
    A context is copied as the source's text; an order's details, whose arches and rush must be taken
    out, is quarantined (data_quality) and the rows around it load."""
    if row_path:  # the psycopg2 reader (values Arrow cannot parse exactly take it)
        monkeypatch.setattr("dbmig_pipeline.engine.copy_read.column_types", lambda *a, **k: None)
    deep = '{"k": ' + "[" * 1000 + "1" + "]" * 1000 + "}"
    base_rows(pair, patients=3, orders=3)
    pair.src("UPDATE orders SET details = CAST(:d AS jsonb) WHERE id = 2", d=deep)
    messages = insert(pair, "system_messages", [
        {"created_at": OLD, "updated_at": OLD, "severity": "info", "code": "D", "body": "b", "context": c}
        for c in ('{"a": 1}', deep)])
    results = pair.run_all(mode=FULL)
    assert all(isinstance(r, SyncStats) for r in results.values()), results

    assert target_ids(pair, "orders") == {1, 3}
    error = error_row(pair, "orders", 2, "data_quality")
    assert "details nests 1,001 levels deep" in error["detail"] and "flatten it" in error["detail"]
    assert target_ids(pair, "system_messages") == set(messages)
    assert pair.dst("SELECT context = CAST(:c AS jsonb) FROM app.system_messages WHERE legacy_id = :i",
                    c=deep, i=messages[1]) == [(True,)]


# --- memory -------------------------------------------------------------------------

@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the mmap threshold is glibc's")
def test_a_pass_fixes_the_mmap_threshold_of_its_process(pair, monkeypatch):
    """engine/allocator.py: the batches' freed buffers go back to the kernel (its own tests show how)."""
    monkeypatch.setattr(allocator, "_decided", None)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    pair.run("offices")
    assert allocator._decided is True
