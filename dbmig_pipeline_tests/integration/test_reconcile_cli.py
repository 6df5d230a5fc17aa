"""`dbmig baseline`, `dbmig diff` and `dbmig reconcile` in a subprocess, on databases they did not create.

A hand-made legacy source whose quarantined and parked rows are known by
construction, fully loaded by `dbmig migrate`; then exactly counted changes.
Every expected number below is written out by hand.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dbmig_pipeline.schema import apply_legacy_schema
from dbmig_pipeline_tests.integration.test_cli_setup import run_dbmig

OLD = datetime(2019, 3, 1, tzinfo=UTC)
#: known by construction: patients 9 (status 7) and 10 (blank first name) quarantined; their orders 9 and 10
#: parked; order 11 (negative price) quarantined
QUARANTINED = {"patients": 2, "orders": 1}
PARKED = {"patients": 0, "orders": 2}


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool)


def _sql(url: str, statement: str, **params) -> list[tuple]:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _source(make_database) -> str:
    url = make_database("legacy")
    engine = _engine(url)
    apply_legacy_schema(engine)
    with engine.begin() as conn:
        run = lambda statement, **p: conn.execute(sa.text(statement), p)  # noqa: E731
        run("INSERT INTO offices (created_at, updated_at, name, is_active) VALUES (:t, :t, 'Office', true)", t=OLD)
        run("INSERT INTO doctors (created_at, updated_at, office_id, first_name, last_name, specialty, is_active)"
            " VALUES (:t, :t, 1, 'Dana', 'Doctor', 'ORTHO', true)", t=OLD)
        for i in range(1, 11):
            run("INSERT INTO patients (created_at, updated_at, doctor_id, first_name, last_name, status)"
                " VALUES (:c, :u, 1, :f, :l, :s)", c=OLD, u=OLD + timedelta(hours=i),
                f="   " if i == 10 else "Pat", l=f"Patient {i}", s=7 if i == 9 else 1)
        for i in range(1, 13):
            run("INSERT INTO orders (created_at, updated_at, patient_id, order_no, status, price, details)"
                " VALUES (:c, :u, :p, :n, 'draft', :pr, '{\"arches\": \"upper\"}')", c=OLD,
                u=OLD + timedelta(hours=i), p={11: 1, 12: 2}.get(i, i), n=f"o-{i}", pr=-1 if i == 11 else 10)
        for i in range(1, 13):
            run("INSERT INTO jaws (created_at, updated_at, patient_ref, arch, teeth) VALUES (:c, :u, 1, 'U', '11')",
                c=OLD, u=OLD + timedelta(hours=i))
    engine.dispose()
    return url


def _env(tmp_path, make_database) -> dict:
    return {
        "DBMIG_HOME": str(tmp_path),
        "DBMIG_SOURCE_URL": _source(make_database),
        "DBMIG_DEST_URL": make_database("target"),
        "DAGSTER_PG_URL": make_database("dagster"),
    }


def _migrate(env: dict) -> None:
    result = run_dbmig("migrate", "--json", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    by_entity = {e["entity"]: e["metadata"] for e in json.loads(result.stdout)["entities"]}
    assert by_entity["orders"]["rows_written"] == 9 and by_entity["patients"]["rows_written"] == 8


def _json(env: dict, *args: str):
    result = run_dbmig(*args, "--json", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Row count and content checksum of every app.* and dbmig.* table."""
    tables = _sql(url, "SELECT table_schema || '.' || table_name FROM information_schema.tables"
                       " WHERE table_schema IN ('app', 'dbmig') AND table_type = 'BASE TABLE' ORDER BY 1")
    assert len(tables) >= 10
    return {t: _sql(url, f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))"
                         f" FROM {t} x")[0] for (t,) in tables}


def test_diff_and_baseline_only_read_and_count_right_then_reconcile_repairs_behind_the_delete_guard(
        tmp_path, make_database):
    env = {**_env(tmp_path, make_database), "DBMIG_DELETE_GUARD_MIN_ROWS": "9"}  # the guard's floor, for 12 jaws
    _migrate(env)
    src, dst, dagster = env["DBMIG_SOURCE_URL"], env["DBMIG_DEST_URL"], env["DAGSTER_PG_URL"]
    quiet = _json(env, "baseline")
    assert all(r["new"] == r["changed"] == r["deleted"] == 0 for r in quiet), quiet

    # Patients: N=2 updates that bump updated_at, M=3 inserts, all timestamped now.
    _sql(src, "UPDATE patients SET last_name = last_name || ' (moved)', updated_at = now() WHERE id IN (2, 6)")
    _sql(src, "INSERT INTO patients (created_at, updated_at, doctor_id, first_name, last_name, status)"
              " SELECT now(), now(), 1, 'New', 'Patient ' || g, 0 FROM generate_series(1, 3) g")
    # Orders: 2 silent updates, 3 inserts dated before the watermark, 1 delete (a leaf): no timestamp shows them.
    _sql(src, "UPDATE orders SET status = 'submitted' WHERE id IN (3, 7)")
    _sql(src, "INSERT INTO orders (created_at, updated_at, patient_id, order_no, status, price)"
              " SELECT :t, :t, 4, 'late-' || g, 'draft', 1 FROM generate_series(1, 3) g", t=OLD)
    _sql(src, "DELETE FROM orders WHERE id = 5")
    # Jaws: 9 of 12 gone at once (a truncated source?).
    _sql(src, "DELETE FROM jaws WHERE id > 3")
    before = _snapshot(dst)
    runs = _sql(dagster, "SELECT count(*) FROM runs")

    # --- diff: exactly what a differential sync would move --------------------------------
    pending = {r["entity"]: r for r in _json(env, "diff")}
    patients = pending["patients"]
    assert (patients["new"], patients["changed"], patients["to_move"]) == (3, 2, 5)
    # scanned: the five, and patient 10 (the newest row of the load) again, within the look-back
    assert patients["id_range"] == [2, 13] and patients["rows_scanned"] == 5 + 1
    # What only reconciliation can find is invisible to diff (a differential sync would not move it).
    assert pending["orders"]["to_move"] == 0 and pending["orders"]["id_range"] is None
    assert all(pending[e]["to_move"] == 0 for e in ("offices", "doctors", "jaws", "system_messages"))

    # --- baseline: hand-computed counts -------------------------------------------------------
    found = {r["entity"]: r for r in _json(env, "baseline")}
    orders = found["orders"]
    assert orders["source_rows"] == 14
    assert {k: orders[k] for k in ("new", "changed", "deleted", "unchanged", "parked", "quarantined")} == {
        "new": 3, "changed": 2, "deleted": 1, "unchanged": 14 - 5,
        "parked": PARKED["orders"], "quarantined": QUARANTINED["orders"]}
    assert (orders["new_id_range"], orders["changed_id_range"], orders["deleted_id_range"]) == (
        [13, 15], [3, 7], [5, 5])
    patients = found["patients"]
    assert {k: patients[k] for k in ("source_rows", "new", "changed", "deleted", "unchanged", "parked",
                                     "quarantined")} == {
        "source_rows": 13, "new": 3, "changed": 2, "deleted": 0, "unchanged": 8,
        "parked": PARKED["patients"], "quarantined": QUARANTINED["patients"]}
    jaws = found["jaws"]
    assert (jaws["source_rows"], jaws["deleted"], jaws["deleted_id_range"], jaws["unchanged"]) == (3, 9, [4, 12], 3)
    assert found["offices"]["unchanged"] == found["offices"]["source_rows"] == 1

    # Neither command wrote a thing: every control and target table as before, no Dagster run.
    assert _snapshot(dst) == before
    assert _sql(dagster, "SELECT count(*) FROM runs") == runs

    # --- reconcile: jaws halts at the delete guard, the other entities are repaired ------------
    halted = run_dbmig("reconcile", env=env, timeout=300)
    assert halted.returncode == 1, halted.stdout + halted.stderr
    assert "jaws" in halted.stdout and "--force-deletes" in halted.stdout and "Traceback" not in halted.stderr
    assert _sql(dst, "SELECT count(*) FROM app.jaws WHERE deleted_at IS NOT NULL") == [(0,)]
    assert _sql(dst, "SELECT entity FROM dbmig.audit_log WHERE operation = 'delete_guard_halt'") == [("jaws",)]
    assert _sql(dst, "SELECT legacy_id, status::text, deleted_at IS NOT NULL FROM app.orders"
                     " WHERE legacy_id IN (3, 5, 7, 13, 14, 15) ORDER BY 1") == [
        (3, "submitted", False), (5, "draft", True), (7, "submitted", False),
        (13, "draft", False), (14, "draft", False), (15, "draft", False)]
    assert _sql(dst, "SELECT count(*) FROM app.patients WHERE family_name LIKE '%(moved)' OR given_name = 'New'"
                ) == [(5,)]

    forced = _json(env, "reconcile", "--entity", "jaws", "--force-deletes")
    assert forced["ok"], forced["errors"]
    assert list(forced["entities"]) == ["jaws"] and forced["entities"]["jaws"]["soft_deleted"] == 9
    assert _sql(dst, "SELECT array_agg(legacy_id ORDER BY legacy_id) FROM app.jaws WHERE deleted_at IS NOT NULL"
                ) == [(list(range(4, 13)),)]

    # Converged: nothing left to find; parked and quarantined rows still explained.
    after = {r["entity"]: r for r in _json(env, "baseline")}
    assert {e: (r["new"], r["changed"], r["deleted"]) for e, r in after.items() if r["new"] or r["changed"]
            or r["deleted"]} == {}
    assert (after["orders"]["parked"], after["orders"]["quarantined"]) == (PARKED["orders"], QUARANTINED["orders"])
