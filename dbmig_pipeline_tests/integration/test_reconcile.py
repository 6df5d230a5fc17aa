"""Reconciliation and late rows against real databases (MAPPING.md section 4, issue 4).

Who finds what: a differential sync moves every change that bumps
`updated_at` (late commits included, protected by the source's safe
horizon); the checksum baseline and `reconcile_entity` find and repair what
no timestamp shows. Each test first shows that the differential path alone
does not see the difference, then that reconciliation repairs it; expected
target content comes from the SQL oracle in engine_helpers or is written out
by hand.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dbmig_pipeline.engine.baseline import Baseline, baseline_entity
from dbmig_pipeline.engine.detect import PendingChanges, detect_pending
from dbmig_pipeline.engine.errors import IntegrityHalt
from dbmig_pipeline.engine.partitions import partitions_for
from dbmig_pipeline.engine.plan import pending_keys
from dbmig_pipeline.engine.reconcile import DeleteGuardHalt, Reconciliation, reconcile_entity
from dbmig_pipeline.engine.sync import DIFFERENTIAL, FULL, RunInfo, SyncStats, sync_entity
from dbmig_pipeline.entities import ENTITY_NAMES
from dbmig_pipeline_tests.integration.engine_helpers import (
    SPECS,
    Pair,
    assert_target_matches_oracle,
    insert,
    ledger,
    open_errors,
    pair_fixture,  # noqa: F401 (the `pair` fixture)
    target_ids,
    target_rows,
)

OLD = datetime(2019, 3, 1, tzinfo=UTC)  # before the first partition
LOOKBACK = timedelta(minutes=5)  # the default DBMIG_LOOKBACK_SECONDS
GUARD = 0.1  # the default DBMIG_DELETE_GUARD_PERCENT


# --- helpers --------------------------------------------------------------------

def seed(pair: Pair, *, patients: int = 12, orders: int = 12, jaws: int = 12) -> None:
    """One office, one doctor, then patients/orders/jaws an hour apart each (far outside any look-back)."""
    insert(pair, "offices", [{"created_at": OLD, "updated_at": OLD, "name": "Office", "is_active": True}])
    insert(pair, "doctors", [{"created_at": OLD, "updated_at": OLD, "office_id": 1, "first_name": "Dana",
                              "last_name": "Doctor", "specialty": "ORTHO", "is_active": True}])
    insert(pair, "patients", [
        {"created_at": OLD, "updated_at": OLD + timedelta(hours=i), "doctor_id": 1, "first_name": "Pat",
         "last_name": f"Patient {i}", "status": 1} for i in range(1, patients + 1)])
    insert(pair, "orders", [
        {"created_at": OLD, "updated_at": OLD + timedelta(hours=i), "patient_id": 1 + (i - 1) % patients,
         "order_no": f"o-{i}", "status": "draft", "price": "10.00", "details": '{"arches": "upper"}'}
        for i in range(1, orders + 1)])
    insert(pair, "jaws", [
        {"created_at": OLD, "updated_at": OLD + timedelta(hours=i), "patient_ref": i, "arch": "U",
         "teeth": "11,21", "scan_url": f"s3://scans/{i}"} for i in range(1, jaws + 1)])


def differential(pair: Pair, entity: str, run_id: str, lookback: timedelta = LOOKBACK) -> SyncStats:
    """A differential run as `dbmig migrate` plans it: from the saved watermark minus the look-back."""
    keys = pending_keys(pair.dest, entity, pair.keys, lookback)
    return sync_entity(pair.source, pair.dest, SPECS[entity], SPECS, partitions_for(keys, pair.keys), pair.keys,
                       RunInfo(run_id, "pytest", mode=DIFFERENTIAL, batch_size=7, lookback=lookback))


def pending(pair: Pair, entity: str, lookback: timedelta = LOOKBACK) -> PendingChanges:
    src, dst = pair.source.raw_connection(), pair.dest.raw_connection()
    try:
        return detect_pending(src, dst, pair.dest, SPECS[entity], pair.keys, lookback, 7)
    finally:
        src.close()
        dst.close()


def baseline(pair: Pair, entity: str) -> Baseline:
    src, dst = pair.source.raw_connection(), pair.dest.raw_connection()
    try:
        return baseline_entity(src, dst, SPECS[entity])
    finally:
        src.close()
        dst.close()


def reconcile(pair: Pair, entity: str, run_id: str = "rec-1", *, force: bool = False,
              guard_min_rows: int = 1) -> Reconciliation:
    """One entity's reconciliation; the guard's row floor low enough for the small tables of these tests
    (the default floor has a test of its own)."""
    return reconcile_entity(pair.source, pair.dest, SPECS[entity], SPECS, RunInfo(run_id, "pytest", batch_size=7),
                            guard_share=GUARD, guard_min_rows=guard_min_rows, force_deletes=force)


def snapshot(pair: Pair, *, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    """Row count and content checksum of every app.* and dbmig.* table of the destination."""
    tables = pair.dst("SELECT table_schema || '.' || table_name FROM information_schema.tables"
                      " WHERE table_schema IN ('app', 'dbmig') AND table_type = 'BASE TABLE' ORDER BY 1")
    result = {}
    for (table,) in tables:
        if table in skip:
            continue
        result[table] = pair.dst(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                                 f" FROM {table} t")[0]
    return result


def ledger_hash_matches_source(pair: Pair, entity: str, legacy_id: int) -> bool:
    table = SPECS[entity].source_table
    cols = ", ".join(SPECS[entity].source_columns)
    source = pair.src(f"SELECT md5(ROW({cols})::text)::uuid::text FROM {table} WHERE id = :i", i=legacy_id)
    recorded = pair.dst("SELECT row_hash::text FROM dbmig.row_ledger WHERE entity = :e AND legacy_id = :i",
                        e=entity, i=legacy_id)
    return bool(source) and source == recorded


# --- 1. updates that do not bump updated_at -------------------------------------------

def test_update_without_timestamp_bump_is_found_by_baseline_and_repaired_by_reconcile(pair):
    seed(pair)
    pair.run_all(mode=FULL)
    assert baseline(pair, "patients").differences == 0
    pair.src("UPDATE patients SET last_name = 'Silently Renamed', status = 2 WHERE id = 5")  # no bump

    # The differential path does not see it: patient 5 lies hours before the watermark minus the look-back.
    assert pending(pair, "patients").to_move == 0
    assert differential(pair, "patients", "run-2").written == 0
    assert target_rows(pair.dest, "patients")[5]["family_name"] == "Patient 5"

    # Without the checksum comparison nothing would name it: changed=1, exactly id 5.
    found = baseline(pair, "patients")
    assert (found.source_rows, found.new, found.changed, found.deleted, found.unchanged) == (12, 0, 1, 0, 11)
    assert found.changed_id_range == (5, 5) and found.new_id_range is None and found.deleted_id_range is None

    result = reconcile(pair, "patients")
    assert (result.repaired, result.soft_deleted) == (1, 0)
    row = target_rows(pair.dest, "patients")[5]
    assert (row["family_name"], row["status"], row["deleted_at"]) == ("Silently Renamed", "in_treatment", None)
    assert ledger_hash_matches_source(pair, "patients", 5)
    assert_target_matches_oracle(pair)
    audit = pair.dst("SELECT details->>'repaired', details->>'changed' FROM dbmig.audit_log"
                     " WHERE operation = 'reconciled' AND entity = 'patients'")
    assert audit == [("1", "1")]


# --- 2. NULL updated_at -------------------------------------------------------------------

def test_system_message_without_updated_at_is_migrated_and_kept_in_sync_by_reconcile(pair):
    insert(pair, "system_messages", [
        {"created_at": OLD, "updated_at": None if i % 2 else OLD + timedelta(hours=i), "severity": "info",
         "code": f"C{i}", "body": f"body {i}"} for i in range(1, 7)])
    stats = pair.run("system_messages", mode=FULL)
    assert (stats.read, stats.written) == (6, 6)
    rows = target_rows(pair.dest, "system_messages")
    assert {i for i, r in rows.items() if r["source_updated_at"] is None} == {1, 3, 5}

    pair.src("UPDATE system_messages SET body = 'edited without a timestamp' WHERE id = 3")
    assert pair.src("SELECT updated_at FROM system_messages WHERE id = 3") == [(None,)]
    # No cursor value: no differential run can see it.
    assert pending(pair, "system_messages").to_move == 0
    assert differential(pair, "system_messages", "run-2").written == 0
    assert target_rows(pair.dest, "system_messages")[3]["body"] == "body 3"

    found = baseline(pair, "system_messages")
    assert (found.changed, found.new, found.deleted, found.changed_id_range) == (1, 0, 0, (3, 3))
    assert reconcile(pair, "system_messages").repaired == 1
    row = target_rows(pair.dest, "system_messages")[3]
    assert (row["body"], row["source_updated_at"]) == ("edited without a timestamp", None)
    assert_target_matches_oracle(pair, ["system_messages"])


# --- 3. late commits: the safe horizon --------------------------------------------------

def test_row_committed_late_with_an_older_updated_at_is_moved_by_the_next_differential_run(pair):
    seed(pair, orders=0, jaws=0)
    pair.run_all(mode=FULL)

    late = pair.source.raw_connection()  # autocommit off: the transaction stays open
    try:
        with late.cursor() as cur:
            cur.execute("SELECT now()")  # starts the transaction: xact_start is set
            opened = cur.fetchone()[0]
        # After it opened: rows with newer timestamps, which the next sync moves.
        pair.src("UPDATE patients SET last_name = last_name || ' v2', updated_at = clock_timestamp()"
                 " WHERE id IN (1, 2)")
        added = insert(pair, "patients", [{"created_at": OLD, "updated_at": datetime.now(UTC), "doctor_id": 1,
                                           "first_name": "New", "last_name": "Patient", "status": 0}])[0]
        moved = {i: ts for i, ts in pair.src("SELECT id, updated_at FROM patients WHERE id IN (1, 2, :a)", a=added)}
        assert all(ts > opened for ts in moved.values())

        second = differential(pair, "patients", "run-2", lookback=timedelta(0))  # no look-back to hide behind
        assert second.written == 3
        # The cursor stopped at the open transaction's start, not at the newest row moved: without the
        # horizon it would be max(moved) and the late row below would lie behind it for good.
        (cursor,) = pair.dst("SELECT max(cursor_updated_at) FROM dbmig.migration_control"
                             " WHERE entity = 'patients'")[0]
        assert cursor <= opened < min(moved.values())

        with late.cursor() as cur:
            cur.execute("UPDATE patients SET last_name = 'Committed Late', updated_at = now() WHERE id = 4")
        late.commit()
    finally:
        late.close()
    (stamp,) = pair.src("SELECT updated_at FROM patients WHERE id = 4")[0]
    assert stamp == opened and stamp < min(moved.values())  # older than what the last sync already moved

    third = differential(pair, "patients", "run-3", lookback=timedelta(0))
    assert third.written == 1
    assert target_rows(pair.dest, "patients")[4]["family_name"] == "Committed Late"
    assert pair.dst("SELECT count(*) FROM dbmig.audit_log WHERE operation = 'reconciled'") == [(0,)]
    assert baseline(pair, "patients").differences == 0  # nothing left for reconciliation
    assert_target_matches_oracle(pair, ["offices", "doctors", "patients"])


# --- 4. deletes and rows that come back --------------------------------------------------

def test_deleted_rows_are_soft_deleted_children_untouched_and_revived_when_they_return(pair):
    seed(pair)
    pair.run_all(mode=FULL)
    patient = pair.src("SELECT * FROM patients WHERE id = 2")[0]
    order = pair.src("SELECT id, created_at, updated_at, patient_id, order_no, status, aligner_count, price,"
                     " currency, details::text, submitted_at, shipped_at FROM orders WHERE id = 5")[0]
    child_before = pair.dst("SELECT o.* FROM app.orders o WHERE legacy_id = 2")
    patient_before = target_rows(pair.dest, "patients")[2]
    # Patient 2 still has order 2. The FK would refuse the delete (and dropping it is schema drift, which
    # halts the entity), so the delete bypasses FK enforcement: a legacy source with an orphan child.
    with pair.source.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql("DELETE FROM patients WHERE id = 2")
    pair.src("DELETE FROM orders WHERE id = 5")  # a leaf
    assert pending(pair, "patients").to_move == 0 and pending(pair, "orders").to_move == 0

    found = baseline(pair, "patients")
    assert (found.deleted, found.deleted_id_range, found.changed, found.new) == (1, (2, 2), 0, 0)
    result = reconcile(pair, "patients")
    assert (result.soft_deleted, result.repaired) == (1, 0)
    assert reconcile(pair, "orders").soft_deleted == 1

    patients = target_rows(pair.dest, "patients")
    assert len(patients) == 12  # kept
    assert patients[2]["deleted_at"] is not None
    assert {k: v for k, v in patients[2].items() if k != "deleted_at"} == {
        k: v for k, v in patient_before.items() if k != "deleted_at"}
    assert [i for i, r in patients.items() if r["deleted_at"] is not None] == [2]
    # Its child is not touched: same row, same parent, not deleted, not even re-synced.
    assert pair.dst("SELECT o.* FROM app.orders o WHERE legacy_id = 2") == child_before
    orders = target_rows(pair.dest, "orders")
    assert orders[2]["parent"] == 2 and orders[2]["deleted_at"] is None
    assert len(orders) == 12 and [i for i, r in orders.items() if r["deleted_at"] is not None] == [5]
    assert ledger(pair, "patients")[2] == "deleted" and ledger(pair, "orders")[5] == "deleted"
    assert baseline(pair, "patients").differences == 0 and baseline(pair, "orders").differences == 0

    # Patient 2 comes back with its old id and content (old timestamp): only reconciliation sees it.
    columns = ", ".join(f":c{i}" for i in range(len(patient)))
    pair.src(f"INSERT INTO patients VALUES ({columns})", **{f"c{i}": v for i, v in enumerate(patient)})
    assert pending(pair, "patients").to_move == 0
    back = baseline(pair, "patients")
    assert (back.new, back.new_id_range, back.deleted) == (1, (2, 2), 0)
    assert reconcile(pair, "patients", "rec-2").repaired == 1
    assert target_rows(pair.dest, "patients")[2]["deleted_at"] is None
    assert ledger(pair, "patients")[2] == "loaded"

    # Order 5 comes back with a new updated_at: a plain differential sync revives it.
    pair.src("INSERT INTO orders (id, created_at, updated_at, patient_id, order_no, status, aligner_count, price,"
             " currency, details, submitted_at, shipped_at) VALUES (:i, :c, now(), :p, :n, :s, :a, :pr, :cu,"
             " CAST(:d AS jsonb), :sub, :sh)",
             i=order[0], c=order[1], p=order[3], n=order[4], s=order[5], a=order[6], pr=order[7], cu=order[8],
             d=order[9], sub=order[10], sh=order[11])
    stats = differential(pair, "orders", "run-2")
    assert stats.written == 1
    assert target_rows(pair.dest, "orders")[5]["deleted_at"] is None
    assert ledger(pair, "orders")[5] == "loaded"
    assert_target_matches_oracle(pair)  # every row live again, content as the source says


def test_parked_rows_the_source_lost_or_moved_without_a_bump_are_found_by_reconcile(pair):
    """A sync retries only parked rows whose recorded parent arrived (decision 0009); what happens to a
    parked row without a timestamp bump is reconciliation's, like every such change."""
    seed(pair)
    quarantined = insert(pair, "patients", [{"created_at": OLD, "updated_at": OLD, "doctor_id": 1,
                                             "first_name": "Unknown", "last_name": "Status", "status": 7}])[0]
    lost, moved = insert(pair, "orders", [
        {"created_at": OLD, "updated_at": OLD, "patient_id": quarantined, "order_no": f"parked-{n}",
         "status": "draft", "price": "1.00"} for n in range(2)])
    pair.run_all(mode=FULL)
    waiting = {("patients", quarantined): "business_rule", ("orders", lost): "missing_parent",
               ("orders", moved): "missing_parent"}
    assert open_errors(pair) == waiting
    pair.src("DELETE FROM orders WHERE id = :i", i=lost)
    pair.src("UPDATE orders SET patient_id = 3 WHERE id = :i", i=moved)  # no bump

    differential(pair, "orders", "run-2")
    assert open_errors(pair) == waiting and moved not in target_ids(pair, "orders")

    result = reconcile(pair, "orders")
    assert (result.soft_deleted, result.repaired) == (0, 1)  # the lost row never had a target row
    assert open_errors(pair) == {("patients", quarantined): "business_rule"}
    assert moved in target_ids(pair, "orders") and lost not in target_ids(pair, "orders")
    assert ledger(pair, "orders")[lost] == "deleted"
    assert baseline(pair, "orders").differences == 0
    assert_target_matches_oracle(pair)


# --- 5. the delete guard -----------------------------------------------------------------

def test_delete_guard_halts_on_mass_disappearance_and_force_deletes_goes_through(pair):
    seed(pair, patients=3, orders=0, jaws=12)
    pair.run_all(mode=FULL)
    pair.src("DELETE FROM jaws WHERE id > 3")  # 9 of 12 gone: a truncated or wrong source?
    before = snapshot(pair, skip=("dbmig.audit_log",))
    audits = pair.dst("SELECT count(*) FROM dbmig.audit_log")[0][0]

    with pytest.raises(DeleteGuardHalt) as halt:
        reconcile(pair, "jaws")
    assert "jaws" in str(halt.value) and "9" in str(halt.value) and "--force-deletes" in str(halt.value)
    # Nothing changed in target, ledger, errors or cursors; only the halt is on record.
    assert snapshot(pair, skip=("dbmig.audit_log",)) == before
    assert pair.dst("SELECT count(*) FROM dbmig.audit_log")[0][0] == audits + 1
    halted = pair.dst("SELECT entity, operator, (details->>'deleted')::int, (details->>'live')::int"
                      " FROM dbmig.audit_log WHERE operation = 'delete_guard_halt'")
    assert halted == [("jaws", "pytest", 9, 12)]

    result = reconcile(pair, "jaws", "rec-2", force=True)
    assert result.soft_deleted == 9
    jaws = target_rows(pair.dest, "jaws")
    assert len(jaws) == 12
    assert {i for i, r in jaws.items() if r["deleted_at"] is not None} == set(range(4, 13))
    assert sorted(i for i, o in ledger(pair, "jaws").items() if o == "deleted") == list(range(4, 13))
    assert pair.dst("SELECT sum((details->>'rows')::int) FROM dbmig.audit_log"
                    " WHERE operation = 'rows_deleted' AND entity = 'jaws'") == [(9,)]
    assert baseline(pair, "jaws").differences == 0


def test_delete_guard_lets_a_small_share_through(pair):
    seed(pair, patients=3, orders=0, jaws=12)
    pair.run_all(mode=FULL)
    pair.src("DELETE FROM jaws WHERE id = 7")  # 1 of 12 (8%) is within the 10% guard
    assert reconcile(pair, "jaws").soft_deleted == 1
    assert pair.dst("SELECT count(*) FROM dbmig.audit_log WHERE operation = 'delete_guard_halt'") == [(0,)]


def test_ids_spanning_more_than_the_integer_range_are_compared_and_repaired(pair):
    """An id range's segment was computed in int4 (`id - lo`): ids from -1 to 2147483647 overflowed and
    baseline and reconcile failed for the whole entity."""
    insert(pair, "offices", [{"id": i, "created_at": OLD, "updated_at": OLD, "name": f"Office {i}",
                              "is_active": True} for i in (-2147483648, -1, 7, 2147483647)])
    pair.run("offices", mode=FULL)
    pair.src("UPDATE public.offices SET name = 'Renamed' WHERE id IN (-2147483648, 2147483647)")  # no bump
    pair.src("DELETE FROM public.offices WHERE id = 7")
    found = baseline(pair, "offices")
    assert (found.changed, found.deleted, found.unchanged) == (2, 1, 1)
    result = reconcile(pair, "offices", force=True)  # 1 of 4: past the guard's share
    assert (result.repaired, result.soft_deleted) == (2, 1)
    assert pair.dst("SELECT legacy_id, display_name, deleted_at IS NOT NULL FROM app.offices ORDER BY 1") == [
        (-2147483648, "Renamed", False), (-1, "Office -1", False), (7, "Office 7", True),
        (2147483647, "Renamed", False)]
    assert baseline(pair, "offices").differences == 0


def test_delete_guard_lets_fewer_rows_than_its_floor_through_whatever_their_share(pair):
    """A few real deletes in a small table are soft-deleted (MAPPING.md §4) without `--force-deletes`:
    the guard keeps its halt for tables large enough to be wiped (DBMIG_DELETE_GUARD_MIN_ROWS)."""
    seed(pair, patients=3, orders=0, jaws=12)
    pair.run_all(mode=FULL)
    pair.src("DELETE FROM jaws WHERE id > 3")  # 9 of 12
    with pytest.raises(DeleteGuardHalt, match="DBMIG_DELETE_GUARD_MIN_ROWS"):
        reconcile(pair, "jaws", guard_min_rows=9)  # 9 rows reach a floor of 9
    assert reconcile(pair, "jaws", "rec-2", guard_min_rows=10).soft_deleted == 9
    assert reconcile_entity(pair.source, pair.dest, SPECS["jaws"], SPECS, RunInfo("rec-3", "pytest"),
                            guard_share=GUARD).soft_deleted == 0  # the default floor (1,000); nothing left to do
    assert pair.dst("SELECT count(*) FROM app.jaws WHERE deleted_at IS NOT NULL") == [(9,)]


# --- 8. rows inserted with old timestamps --------------------------------------------------

def test_rows_inserted_with_old_timestamps_are_found_by_reconcile_and_their_children_follow(pair):
    seed(pair, orders=3, jaws=0)
    pair.run_all(mode=FULL)
    pair.src("UPDATE patients SET status = 2, updated_at = now() WHERE id = 1")
    assert differential(pair, "patients", "run-2").written == 1  # the watermark is now
    (watermark,) = pair.dst("SELECT max(cursor_updated_at) FROM dbmig.migration_control WHERE entity = 'patients'")[0]

    # Dated long before the watermark minus the look-back (e.g. a backfill or an import).
    backdated = insert(pair, "patients", [
        {"created_at": OLD, "updated_at": OLD + timedelta(minutes=30 + i), "doctor_id": 1, "first_name": "Back",
         "last_name": f"Dated {i}", "status": 1} for i in range(2)])
    assert all(ts < watermark - LOOKBACK for (ts,) in pair.src("SELECT updated_at FROM patients WHERE id >= :i",
                                                                 i=backdated[0]))
    # A current order of one of them: the differential sync parks it, its parent is nowhere.
    order = insert(pair, "orders", [{"created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": backdated[1],
                                     "order_no": "child-of-backdated", "status": "draft", "price": "1.00"}])[0]
    assert pending(pair, "patients").to_move == 0
    assert differential(pair, "patients", "run-3").written == 0
    assert differential(pair, "orders", "run-3").parked == 1
    assert open_errors(pair, "orders") == {("orders", order): "missing_parent"}

    found = baseline(pair, "patients")
    assert (found.new, found.new_id_range, found.changed, found.deleted) == (2, tuple(backdated), 0, 0)
    assert reconcile(pair, "patients").repaired == 2
    assert set(backdated) <= target_ids(pair, "patients")

    # The child loads in the next run at the latest.
    later = differential(pair, "orders", "run-4")
    assert later.unparked == 1 and order in target_ids(pair, "orders")
    assert open_errors(pair) == {}
    assert_target_matches_oracle(pair)


def test_a_collision_found_by_reconcile_stops_the_entity_until_the_source_is_fixed(pair):
    seed(pair, orders=3, jaws=0)
    pair.run_all(mode=FULL)
    # Inserted with an old timestamp (only reconciliation finds it), its number that of order 2 once upper-cased.
    late = insert(pair, "orders", [{"created_at": OLD, "updated_at": OLD, "patient_id": 1, "order_no": " O-2 ",
                                    "status": "draft", "price": "1.00"}])[0]
    assert pending(pair, "orders").to_move == 0

    with pytest.raises(IntegrityHalt) as halt:
        reconcile(pair, "orders")
    assert "O-2" in str(halt.value) and f"2, {late}" in str(halt.value)
    assert late not in target_ids(pair, "orders")
    # Recorded as a pass records a halt: the entity stays stopped, every sync retries the named rows.
    assert open_errors(pair, "orders") == {("orders", 2): "integrity", ("orders", late): "integrity"}
    with pytest.raises(IntegrityHalt):
        differential(pair, "orders", "run-2")

    pair.src("UPDATE orders SET order_no = 'o-late' WHERE id = :i", i=late)  # the fix, without a bump
    differential(pair, "orders", "run-3")  # the first run after the fix succeeds, without clean-up
    assert late in target_ids(pair, "orders") and open_errors(pair, "orders") == {}
    assert baseline(pair, "orders").differences == 0
    assert_target_matches_oracle(pair)


@pytest.mark.parametrize("bump", [True, False], ids=["fixed-with-bump", "fixed-without-bump"])
def test_reconcile_as_the_first_run_after_a_collision_is_fixed_resolves_both_rows(pair, bump):
    """Order 2 (loaded long ago) and a new order collide; the new one is renumbered and reconcile is the
    first run after the fix. Order 2 never differs in the baseline, so its integrity error stayed open:
    `dbmig errors` listed a loaded row as held, until some later migrate retried it."""
    seed(pair, orders=3, jaws=0)
    pair.run_all(mode=FULL)
    late = insert(pair, "orders", [{"created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": 1,
                                    "order_no": " O-2 ", "status": "draft", "price": "1.00"}])[0]
    with pytest.raises(IntegrityHalt):
        differential(pair, "orders", "run-2")
    assert open_errors(pair, "orders") == {("orders", 2): "integrity", ("orders", late): "integrity"}

    pair.src("UPDATE orders SET order_no = 'o-late'" + (", updated_at = now()" if bump else "") + " WHERE id = :i",
             i=late)
    reconcile(pair, "orders")
    assert late in target_ids(pair, "orders")
    assert open_errors(pair, "orders") == {}
    assert baseline(pair, "orders").differences == 0
    assert_target_matches_oracle(pair)


def test_reconcile_repairs_two_orders_that_swapped_their_numbers_without_a_bump(pair):
    seed(pair, orders=3, jaws=0)
    pair.run_all(mode=FULL)
    pair.src("UPDATE orders SET order_no = 'tmp' WHERE id = 1; UPDATE orders SET order_no = 'o-1' WHERE id = 2;"
             " UPDATE orders SET order_no = 'o-2' WHERE id = 1")  # one transaction: the legacy order_no is unique

    reconcile(pair, "orders")
    assert dict(pair.dst("SELECT legacy_id, order_number FROM app.orders WHERE legacy_id IN (1, 2)")) == {
        1: "O-2", 2: "O-1"}
    assert open_errors(pair, "orders") == {}
    assert baseline(pair, "orders").differences == 0
    assert_target_matches_oracle(pair)


@pytest.mark.parametrize("reconciled_first", [True, False], ids=["soft-deleted", "delete-not-yet-seen"])
def test_a_deleted_orders_number_reused_by_a_new_order_is_released_to_it(pair, reconciled_first):
    """The target keeps a deleted order (soft delete) and order_number is UNIQUE: a new order that reuses
    the number stopped orders for good, since no fix in the source could clear it. The deleted row now
    gives its number up, kept readable; a live order keeps its collisions."""
    seed(pair, orders=12, jaws=0)
    pair.run_all(mode=FULL)
    pair.src("DELETE FROM orders WHERE id = 2")
    if reconciled_first:
        assert reconcile(pair, "orders").soft_deleted == 1
    new = insert(pair, "orders", [{"created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": 3,
                                   "order_no": " O-2 ", "status": "draft", "price": "1.00"}])[0]

    differential(pair, "orders", "run-2")
    rows = {i: (number, deleted) for i, number, deleted in pair.dst(
        "SELECT legacy_id, order_number, deleted_at IS NOT NULL FROM app.orders WHERE legacy_id IN (2, :n)", n=new)}
    assert rows[new] == ("O-2", False)
    assert rows[2] == ("O-2 (released: legacy id 2 was deleted)", True)  # kept, soft-deleted, number given up
    assert ledger(pair, "orders")[2] == "deleted"
    assert open_errors(pair, "orders") == {}
    assert pair.dst("SELECT details->'legacy_ids' FROM dbmig.audit_log WHERE operation = 'keys_released'") == [([2],)]
    assert baseline(pair, "orders").differences == 0

    # The deleted order comes back with another number: revived with it.
    insert(pair, "orders", [{"id": 2, "created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": 2,
                             "order_no": "o-2-again", "status": "draft", "price": "1.00"}])
    differential(pair, "orders", "run-3")
    assert pair.dst("SELECT order_number, deleted_at FROM app.orders WHERE legacy_id = 2") == [("O-2-AGAIN", None)]
    # A live order's number is still a collision: order 3 has o-3.
    insert(pair, "orders", [{"created_at": OLD, "updated_at": datetime.now(UTC), "patient_id": 3,
                             "order_no": "O-3 ", "status": "draft", "price": "1.00"}])
    with pytest.raises(IntegrityHalt, match="legacy ids 3, "):
        differential(pair, "orders", "run-4")
    assert pair.dst("SELECT order_number, deleted_at FROM app.orders WHERE legacy_id = 3") == [("O-3", None)]


# --- 9. idempotence --------------------------------------------------------------------

def test_second_reconcile_right_after_finds_nothing_and_writes_nothing(pair):
    seed(pair, orders=6, jaws=12)
    pair.src("UPDATE patients SET status = 7 WHERE id = 3")  # quarantined (business_rule); its order 3 parked
    insert(pair, "system_messages", [{"created_at": OLD, "updated_at": None, "severity": "warn", "code": "N",
                                      "body": "null stamp"}])
    pair.run_all(mode=FULL)
    assert open_errors(pair) == {("patients", 3): "business_rule", ("orders", 3): "missing_parent"}
    # One of each kind of difference.
    pair.src("UPDATE patients SET last_name = 'Quiet' WHERE id = 6")
    pair.src("UPDATE system_messages SET body = 'edited' WHERE id = 1")
    pair.src("DELETE FROM jaws WHERE id = 9")
    insert(pair, "orders", [{"created_at": OLD, "updated_at": OLD, "patient_id": 5, "order_no": "backdated",
                             "status": "draft", "price": "2.00"}])

    first = {e: reconcile(pair, e) for e in ENTITY_NAMES}
    assert {e: r.baseline.differences for e, r in first.items() if r.baseline.differences} == {
        "patients": 1, "orders": 1, "jaws": 1, "system_messages": 1}
    assert first["patients"].baseline.quarantined == 1 and first["orders"].baseline.parked == 1
    after_first = snapshot(pair, skip=("dbmig.audit_log",))

    second = {e: reconcile(pair, e, "rec-2") for e in ENTITY_NAMES}
    for entity, result in second.items():
        b = result.baseline
        assert (b.new, b.changed, b.deleted, result.repaired, result.soft_deleted) == (0, 0, 0, 0, 0), entity
        assert b.unchanged == b.source_rows, entity
    # Not a single row re-written (synced_at, ledger recorded_at and errors included).
    assert snapshot(pair, skip=("dbmig.audit_log",)) == after_first
    # ... but the operation is on record (MAPPING.md §5: the audit log records every operation).
    audited = pair.dst("SELECT entity, (details->>'new')::int + (details->>'changed')::int"
                       " + (details->>'deleted')::int FROM dbmig.audit_log"
                       " WHERE operation = 'reconciled' AND run_id = 'rec-2'")
    assert sorted(audited) == sorted((e, 0) for e in ENTITY_NAMES)
    assert second["patients"].baseline.quarantined == 1 and second["orders"].baseline.parked == 1
    assert open_errors(pair) == {("patients", 3): "business_rule", ("orders", 3): "missing_parent"}
    assert_target_matches_oracle(pair, ["offices", "doctors", "patients", "orders", "system_messages"])


def test_a_row_that_comes_back_in_an_older_version_is_revived_with_the_source_content(pair):
    seed(pair, orders=0, jaws=0)
    pair.run_all(mode=FULL)
    first_version = pair.src("SELECT * FROM patients WHERE id = 2")[0]
    pair.src("UPDATE patients SET last_name = 'Second Version', updated_at = now() WHERE id = 2")
    assert differential(pair, "patients", "run-2").written == 1
    pair.src("DELETE FROM patients WHERE id = 2")
    assert reconcile(pair, "patients").soft_deleted == 1
    # Restored from a backup: the first version, with its older updated_at. The source is the truth.
    columns = ", ".join(f":c{i}" for i in range(len(first_version)))
    pair.src(f"INSERT INTO patients VALUES ({columns})", **{f"c{i}": v for i, v in enumerate(first_version)})

    result = reconcile(pair, "patients", "rec-2")
    assert result.baseline.new == 1
    row = target_rows(pair.dest, "patients")[2]
    assert (row["deleted_at"], row["family_name"]) == (None, "Patient 2")
    assert reconcile(pair, "patients", "rec-3").baseline.differences == 0


def test_breaking_schema_drift_halts_reconcile_before_any_write(pair):
    """A repair must not write through a source whose schema changed under the mapping."""
    from dbmig_pipeline.engine.errors import SchemaDriftHalt

    seed(pair)
    pair.run_all()
    pair.src("UPDATE public.jaws SET teeth = '12' WHERE id = 1")  # a change a repair would write
    pair.src("ALTER TABLE public.jaws RENAME COLUMN scan_url TO scan_link")
    before = pair.dst("SELECT md5(string_agg(t::text, '' ORDER BY legacy_id)) FROM app.jaws t")
    with pytest.raises(SchemaDriftHalt, match="scan_url"):
        reconcile_entity(pair.source, pair.dest, SPECS["jaws"], SPECS, RunInfo("rec-drift", "pytest"),
                         guard_share=0.1)
    assert pair.dst("SELECT md5(string_agg(t::text, '' ORDER BY legacy_id)) FROM app.jaws t") == before
