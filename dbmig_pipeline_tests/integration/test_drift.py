"""Schema drift against real PostgreSQL: fingerprints, the halt before any write, accept and
backfill from the command line, the blocking asset check and the sensor."""
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from dbmig_pipeline.assets import build_migration_assets
from dbmig_pipeline.checks import DRIFT_CHECK, build_drift_checks
from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.drift_sensor import build_drift_sensor
from dbmig_pipeline.engine import drift
from dbmig_pipeline.engine.drift_api import inspect_entities
from dbmig_pipeline.engine.drift_classify import diff_tables, state_of
from dbmig_pipeline.engine.errors import PreflightError, SchemaDriftHalt
from dbmig_pipeline.engine.extract import HASH_COLUMN, fetch_by_ids
from dbmig_pipeline.engine.partitions import partition_keys, partitions_for
from dbmig_pipeline.engine.preflight import run_preflight
from dbmig_pipeline.engine.sync import FULL, RunInfo, sync_entity
from dbmig_pipeline.entities import ENTITIES, get_entity
from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase
from dbmig_pipeline.schema import apply_legacy_schema, prepare_destination
from dbmig_pipeline.settings import Settings
from dbmig_pipeline_tests.integration.test_cli_setup import run_dbmig


@pytest.fixture(scope="module")
def pair(pg_server):
    """A legacy schema (empty) and a prepared destination, shared by the read-only cases."""
    urls = []
    for side in ("src", "dst"):
        name = f"drift_{os.getpid()}_{side}"
        pg_server.ensure_database(name)
        urls.append(pg_server.url(name))
    source, dest = sa.create_engine(urls[0]), sa.create_engine(urls[1])
    apply_legacy_schema(source)
    prepare_destination(dest)
    yield source, dest
    source.dispose()
    dest.dispose()
    for side in ("src", "dst"):
        pg_server.drop_database(f"drift_{os.getpid()}_{side}")


def _engines(make_database, *, seed: bool):
    source_url, dest_url = make_database("legacy"), make_database("target")
    source, dest = sa.create_engine(source_url), sa.create_engine(dest_url)
    if seed:
        seed_legacy(source_url, scale=0.0005)
    else:
        apply_legacy_schema(source)
    prepare_destination(dest)
    return source_url, dest_url, source, dest


CASES = [
    # (entity, side, DDL, expected (change, subject, severity), entity state when strictness is normal)
    ("offices", "source", "ALTER TABLE public.offices DROP COLUMN city",
     ("column_dropped", "city", "breaking"), "breaking"),
    ("doctors", "source", "ALTER TABLE public.doctors RENAME COLUMN license_no TO license_number",
     ("column_dropped", "license_no", "breaking"), "breaking"),
    ("offices", "source", "ALTER TABLE public.offices ALTER COLUMN name TYPE text",
     ("column_type", "name", "breaking"), "breaking"),
    ("patients", "source", "ALTER TABLE public.patients ALTER COLUMN first_name DROP NOT NULL",
     ("column_nullability", "first_name", "breaking"), "breaking"),
    ("jaws", "source", "ALTER TABLE public.jaws ADD CONSTRAINT jaws_patient_fk "
                       "FOREIGN KEY (patient_ref) REFERENCES public.patients(id)",
     ("constraint_added", "FOREIGN KEY (patient_ref) REFERENCES public.patients(id)", "breaking"), "breaking"),
    ("orders", "source", "ALTER TABLE public.orders DROP CONSTRAINT orders_patient_id_fkey",
     ("constraint_dropped", "FOREIGN KEY (patient_id) REFERENCES public.patients(id)", "breaking"), "breaking"),
    ("orders", "source", "ALTER TABLE public.orders ADD COLUMN internal_note text",
     ("column_added", "internal_note", "additive"), "additive"),
    ("patients", "source", "CREATE INDEX patients_last_name_idx ON public.patients (last_name)",
     ("index_added", "CREATE INDEX ON public.patients USING btree (last_name)", "additive"), "additive"),
    ("orders", "target", "ALTER TABLE app.orders ADD COLUMN promo_code text",
     ("column_added", "promo_code", "breaking"), "breaking"),
    ("orders", "target", "ALTER TABLE app.orders DROP CONSTRAINT orders_price_cents_check",
     ("constraint_dropped", "CHECK ((price_cents >= 0))", "breaking"), "breaking"),
    ("jaws", "target", "CREATE INDEX jaws_arch_idx ON app.jaws (arch)",
     ("index_added", "CREATE INDEX ON app.jaws USING btree (arch)", "additive"), "additive"),
]


@pytest.mark.parametrize(("entity", "side", "ddl", "expected", "state"), CASES,
                         ids=[f"{c[1]}:{c[2].split(maxsplit=3)[3][:40]}" for c in CASES])
def test_each_kind_of_change_is_classified(pair, entity, side, ddl, expected, state):
    """The DDL runs inside a transaction that is rolled back: each case starts from the same schema."""
    spec = get_entity(entity)
    src, dst = pair[0].raw_connection(), pair[1].raw_connection()
    try:
        with src.cursor() as src_cur, dst.cursor() as dst_cur:
            accepted = drift.current_fingerprints(src_cur, dst_cur, spec)
            (dst_cur if side == "target" else src_cur).execute(ddl)
            current = drift.current_fingerprints(src_cur, dst_cur, spec)
        assert current[side] != accepted[side]
        other = "source" if side == "target" else "target"
        assert current[other] == accepted[other]
        found = diff_tables(spec, side, accepted[side], current[side])
        assert expected in [(d.change, d.subject, d.severity) for d in found], [d.describe() for d in found]
        assert state_of(found, "normal") == state
    finally:
        for conn in (src, dst):
            conn.rollback()
            conn.close()


def test_reseeding_drops_and_recreates_keys_and_indexes_without_drift(make_database):
    source_url, _, source, dest = _engines(make_database, seed=True)
    oids = ("SELECT array_agg(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "WHERE c.contype IN ('f', 'u') AND t.relnamespace = 'public'::regnamespace")
    with source.connect() as conn:
        before = conn.execute(sa.text(oids)).scalar_one()
    first = inspect_entities(source, dest, ENTITIES, "strict", operator="pytest")
    assert all(r.first_contact == ["source", "target"] and r.state == "ok" for r in first)

    seed_legacy(source_url, scale=0.0005, random_seed=7, force=True)

    with source.connect() as conn:
        assert not set(conn.execute(sa.text(oids)).scalar_one()) & set(before)  # really re-created
    again = inspect_entities(source, dest, ENTITIES, "strict", operator="pytest")
    assert [(r.entity, r.state, r.differences) for r in again] == [(s.name, "ok", []) for s in ENTITIES]
    with dest.connect() as conn:
        accepted_by = conn.execute(sa.text("SELECT DISTINCT accepted_by FROM dbmig.schema_snapshots")).scalars().all()
        audits = conn.execute(sa.text(
            "SELECT count(*) FROM dbmig.audit_log WHERE operation = 'drift_accept' AND details->>'first_contact' = 'true'"
        )).scalar_one()
    assert accepted_by == ["initial"] and audits == 2 * len(ENTITIES)


def _preflight(source, dest, spec, run_id):
    src, dst = source.raw_connection(), dest.raw_connection()
    try:
        with src.cursor() as cur:
            run_preflight(cur, spec, dst, operator="pytest", run_id=run_id)
    finally:
        src.close()
        dst.close()


def _audit(dest, operation):
    with dest.connect() as conn:
        return conn.execute(sa.text("SELECT entity, run_id, details FROM dbmig.audit_log WHERE operation = :op "
                                    "ORDER BY id"), {"op": operation}).all()


def test_preflight_warns_once_on_additive_drift_and_halts_when_strict(make_database, monkeypatch):
    _, _, source, dest = _engines(make_database, seed=False)
    jaws = get_entity("jaws")
    _preflight(source, dest, jaws, "r0")  # first contact
    with source.begin() as conn:
        conn.execute(sa.text("ALTER TABLE public.jaws ADD COLUMN scanner text"))
    _preflight(source, dest, jaws, "r1")
    _preflight(source, dest, jaws, "r2")
    warnings = _audit(dest, "drift_warning")
    assert [(e, r) for e, r, _ in warnings] == [("jaws", "r1")]
    assert "public.jaws.scanner: column added" in warnings[0][2]["differences"][0]

    monkeypatch.setenv("DBMIG_DRIFT_STRICTNESS", "strict")
    with pytest.raises(SchemaDriftHalt, match=r"(?s)jaws: schema drift.*scanner.*drift accept --entity jaws") as exc:
        _preflight(source, dest, jaws, "r3")
    assert isinstance(exc.value, PreflightError)
    assert [(e, r) for e, r, _ in _audit(dest, "drift_halt")] == [("jaws", "r3")]


def _count_and_md5(url, query):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                        f"FROM ({query}) t")).one()
    finally:
        engine.dispose()


def _initial_load(source, dest, start):
    prepare_destination(dest)
    keys = partition_keys(start)
    specs = {spec.name: spec for spec in ENTITIES}
    for spec in ENTITIES:
        sync_entity(source, dest, spec, specs, partitions_for(keys, keys), keys, RunInfo("initial", "pytest", mode=FULL))


def test_breaking_drift_halts_the_entity_before_any_write_then_accept_and_backfill(tmp_path, make_database):
    source_url = make_database("legacy")
    seed_legacy(source_url, scale=0.0005)
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    start = today - timedelta(days=3)
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": source_url, "DBMIG_DEST_URL": make_database("target"),
           "DAGSTER_PG_URL": make_database("dagster"), "DBMIG_PARTITION_START": start.isoformat()}
    dest_url = env["DBMIG_DEST_URL"]
    source, dest = sa.create_engine(source_url), sa.create_engine(dest_url)
    _initial_load(source, dest, start)  # in-process: the command line is exercised from the halt on
    with dest.connect() as conn:
        changed = conn.execute(sa.text("SELECT legacy_id FROM dbmig.row_ledger WHERE entity = 'orders' "
                                       "AND outcome = 'loaded' ORDER BY legacy_id LIMIT 5")).scalars().all()
    with source.begin() as conn:
        conn.execute(sa.text("ALTER TABLE public.orders ALTER COLUMN status TYPE text"))
        conn.execute(sa.text("UPDATE public.orders SET aligner_count = 42, updated_at = :ts WHERE id = ANY(:ids)"),
                     {"ts": datetime.combine(yesterday, datetime.min.time(), UTC) + timedelta(hours=12),
                      "ids": changed})
    guarded = {"orders": "SELECT * FROM app.orders", "ledger": "SELECT * FROM dbmig.row_ledger WHERE entity = 'orders'",
               "control": "SELECT * FROM dbmig.migration_control WHERE entity = 'orders'"}
    before = {name: _count_and_md5(dest_url, q) for name, q in guarded.items()}

    halted = run_dbmig("migrate", env=env, timeout=300)
    assert halted.returncode == 1
    lines = halted.stdout.splitlines()
    assert any(line.split()[:2] == ["orders", "FAILED"] and "schema drift" in line for line in lines), halted.stdout
    assert "public.orders.status: type character varying(20) → text" in halted.stdout
    assert "dbmig drift accept --entity orders" in halted.stdout
    for entity in ("offices", "doctors", "patients", "jaws", "system_messages"):
        assert any(line.split()[:2] == [entity, "ok"] for line in lines), halted.stdout
    assert {name: _count_and_md5(dest_url, q) for name, q in guarded.items()} == before
    assert [e for e, _, _ in _audit(dest, "drift_halt")] == ["orders"]

    pending = run_dbmig("drift", "--json", env=env)
    assert pending.returncode == 3, pending.stderr
    states = {r["entity"]: r["state"] for r in json.loads(pending.stdout)}
    assert states == {"offices": "ok", "doctors": "ok", "patients": "ok", "orders": "breaking", "jaws": "ok",
                      "system_messages": "ok"}

    accepted = run_dbmig("drift", "accept", "--entity", "orders", env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert "orders" in accepted.stdout and "1 difference(s) accepted" in accepted.stdout
    with dest.connect() as conn:
        by = conn.execute(sa.text("SELECT accepted_by FROM dbmig.schema_snapshots WHERE entity = 'orders' "
                                  "AND side = 'source'")).scalar_one()
    assert by not in ("initial", "") and _audit(dest, "drift_accept")[-1][0] == "orders"

    backfill = run_dbmig("migrate", "--entity", "orders", "--from", yesterday.isoformat(), "--to", today.isoformat(),
                         "--full", "--json", env=env, timeout=300)
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    with dest.connect() as conn:
        assert conn.execute(sa.text("SELECT array_agg(aligner_count) FROM app.orders WHERE legacy_id = ANY(:ids)"),
                            {"ids": changed}).scalar_one() == [42] * len(changed)
        ledger = dict(conn.execute(sa.text("SELECT legacy_id, row_hash::text FROM dbmig.row_ledger "
                                           "WHERE entity = 'orders'")).all())
    # Every source row of the backfilled range is recorded at its current version.
    with source.connect() as conn:
        in_range = conn.execute(sa.text("SELECT id FROM public.orders WHERE updated_at >= :start"),
                                {"start": datetime.combine(yesterday, datetime.min.time(), UTC)}).scalars().all()
    raw = source.raw_connection()
    try:
        with raw.cursor() as cur:
            rows = fetch_by_ids(cur, get_entity("orders"), in_range)
    finally:
        raw.close()
    assert set(changed) <= set(in_range)
    current = {int(i): uuid.UUID(str(h)) for i, h in zip(rows["id"], rows[HASH_COLUMN])}
    assert current == {i: uuid.UUID(ledger[i]) for i in in_range}
    source.dispose()
    dest.dispose()


def _settings_env(monkeypatch, tmp_path, source_url, dest_url, dagster_url):
    for name, value in {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": source_url, "DBMIG_DEST_URL": dest_url,
                        "DAGSTER_PG_URL": dagster_url, "DBMIG_CONNECT_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)


def test_sensor_records_new_drift_once_without_a_run(tmp_path, make_database, monkeypatch):
    source_url, dest_url, source, dest = _engines(make_database, seed=False)
    _settings_env(monkeypatch, tmp_path, source_url, dest_url, make_database("dagster"))
    sensor = build_drift_sensor(ENTITIES)
    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.build_sensor_context(instance=instance, cursor=None)
        assert "no schema drift" in sensor(first).skip_message  # first contact accepts
        with source.begin() as conn:
            conn.execute(sa.text("ALTER TABLE public.system_messages ALTER COLUMN body TYPE varchar(4000)"))
        second = dg.build_sensor_context(instance=instance, cursor=first.cursor)
        assert "1 newly recorded" in sensor(second).skip_message
        detected = _audit(dest, "drift_detected")
        assert [(e, r) for e, r, _ in detected] == [("system_messages", None)]
        assert "public.system_messages.body: type text → character varying(4000)" in detected[0][2]["differences"][0]
        assert json.loads(second.cursor) == {"system_messages": detected[0][2]["key"]}

        third = dg.build_sensor_context(instance=instance, cursor=second.cursor)
        assert "0 newly recorded" in sensor(third).skip_message
        assert len(_audit(dest, "drift_detected")) == 1
        assert instance.get_runs() == []


def test_blocking_drift_check_fails_with_the_differences(tmp_path, make_database, monkeypatch):
    source_url, dest_url, source, dest = _engines(make_database, seed=False)
    _settings_env(monkeypatch, tmp_path, source_url, dest_url, make_database("dagster"))
    checks = build_drift_checks(ENTITIES)
    assets = build_migration_assets(Settings.from_env())
    key = dg.AssetCheckKey(dg.AssetKey("doctors"), DRIFT_CHECK)
    assert all(spec.blocking for c in checks for spec in c.check_specs)

    def evaluate():
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize([*assets, *checks], selection=dg.AssetSelection.checks(key), instance=instance,
                                    resources={"source_db": SourceDatabase(), "dest_db": DestinationDatabase()},
                                    raise_on_error=False)
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.asset_check_key == key
        return evaluation

    assert evaluate().passed  # first contact
    with source.begin() as conn:
        conn.execute(sa.text("ALTER TABLE public.doctors ALTER COLUMN specialty TYPE varchar(40)"))
    evaluation = evaluate()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    differences = evaluation.metadata["differences"].value
    assert [(d["change"], d["subject"]) for d in differences] == [("column_type", "specialty")]
    assert "dbmig drift accept --entity doctors" in evaluation.description
