"""Hostile values are data, never code: in row data they arrive verbatim (after trimming) and
nothing is harmed; as role names they are refused before anything runs."""
import json

import sqlalchemy as sa

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline_tests.integration.security.cli_runner import invoke_cli, run_cli

DROP = '"; DROP TABLE x; --'
QUOTED = "'); DROP TABLE public.offices; --"
DOLLARS = "$$; DROP SCHEMA app CASCADE; $$"
FORMATS = "%s %(x)s {} {0} \\N \\\\N NULL"  # driver placeholders, format fields, COPY's NULL markers
CSV = 'a,b\t"c"\r\nd \\. e'  # COPY's delimiters, quotes, line breaks and end-of-data marker
ORDER_NO = "  '; drop table x;--  "
NOTES = f"\n {DROP}\n{FORMATS}\n{CSV} \U0001f9b7\u202e \t"
EXTRA = {DROP: QUOTED, "k'ey": "%s", "$$": {"nested": FORMATS}}

def _execute(url, statements):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _one(url, query, params=None):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params or {}).one()
    finally:
        engine.dispose()


def _seed_hostile_rows(url) -> dict[str, int]:
    engine = sa.create_engine(url)
    ids = {}
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE public.x (id int)"))
            conn.execute(sa.text("INSERT INTO public.x VALUES (1)"))

            def insert(statement, **params):
                return conn.execute(sa.text(statement), params).scalar_one()

            ids["offices"] = insert(
                "INSERT INTO public.offices (created_at, updated_at, name, city, country, is_active) "
                "VALUES (now(), now(), :name, :city, 'US', true) RETURNING id", name=f"  {QUOTED}  ", city=FORMATS)
            ids["doctors"] = insert(
                "INSERT INTO public.doctors (created_at, updated_at, office_id, first_name, last_name, license_no, "
                "specialty, is_active) VALUES (now(), now(), :office, :first, :last, :license, 'GP', true) "
                "RETURNING id", office=ids["offices"], first=DROP + "\t", last=CSV, license=DOLLARS)
            ids["patients"] = insert(
                "INSERT INTO public.patients (created_at, updated_at, doctor_id, first_name, last_name, status, notes) "
                "VALUES (now(), now(), :doctor, :first, :last, 1, :notes) RETURNING id",
                doctor=ids["doctors"], first=DOLLARS, last=FORMATS, notes=NOTES)
            ids["orders"] = insert(
                "INSERT INTO public.orders (created_at, updated_at, patient_id, order_no, status, price, details) "
                "VALUES (now(), now(), :patient, :no, 'draft', 1.00, CAST(:details AS jsonb)) RETURNING id",
                patient=ids["patients"], no=ORDER_NO,
                details=json.dumps({"arches": "upper", "rush": True, **EXTRA}))
            ids["jaws"] = insert(
                "INSERT INTO public.jaws (created_at, updated_at, patient_ref, arch, teeth, scan_url) "
                "VALUES (now(), now(), :patient, 'U', '11,12', :url) RETURNING id",
                patient=ids["patients"], url=QUOTED)
            ids["system_messages"] = insert(
                "INSERT INTO public.system_messages (created_at, updated_at, severity, code, body, context) "
                "VALUES (now(), now(), 'info', :code, :body, CAST(:context AS jsonb)) RETURNING id",
                code=DROP, body=FORMATS + CSV, context=json.dumps({DOLLARS: DROP}))
    finally:
        engine.dispose()
    return ids


def test_hostile_row_data_arrives_verbatim_and_harms_nothing(tmp_path, make_database):
    source, dest = make_database("legacy"), make_database("target")
    seed_legacy(source, scale=0.0005)
    ids = _seed_hostile_rows(source)
    _execute(dest, ["CREATE TABLE public.x (id int)", "INSERT INTO public.x VALUES (1)"])
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": source, "DBMIG_DEST_URL": dest,
           "DAGSTER_PG_URL": make_database("dagster")}
    result = run_cli("migrate", "--json", env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(e["ok"] for e in json.loads(result.stdout)["entities"])

    def target(table, columns):
        return _one(dest, f"SELECT {columns} FROM app.{table} WHERE legacy_id = :id", {"id": ids[table]})

    assert target("offices", "display_name, address->>'city'") == (QUOTED, FORMATS)
    assert target("doctors", "given_name, family_name, license_number") == (DROP, CSV, DOLLARS)
    assert target("patients", "given_name, family_name, notes") == (DOLLARS, FORMATS, NOTES.strip())
    assert target("orders", "order_number, arches, is_rush, extra") == (ORDER_NO.strip().upper(), "upper", True, EXTRA)
    assert target("jaws", "scan_url, teeth") == (QUOTED, [11, 12])
    assert target("system_messages", "code, body, context") == (DROP, (FORMATS + CSV).strip(), {DOLLARS: DROP})
    # Nothing was harmed: the canaries, every target table, the source rows.
    for url in (source, dest):
        assert _one(url, "SELECT count(*) FROM public.x") == (1,)
    assert _one(dest, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app'") == (6,)
    assert _one(source, "SELECT name FROM public.offices WHERE id = :id", {"id": ids["offices"]}) == (f"  {QUOTED}  ",)


def test_hostile_role_names_are_refused_before_anything_runs(tmp_path):
    for option, value in (("--dest-role", DROP), ("--source-role", "reader; DROP TABLE x")):
        result = invoke_cli("grants", option, value, env={"DBMIG_HOME": str(tmp_path)})
        assert result.returncode == 2 and f"{option} / DBMIG_" in result.stderr and "Traceback" not in result.stderr
    from_env = invoke_cli("grants", env={"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_ROLE": QUOTED})
    assert from_env.returncode == 2 and "DBMIG_SOURCE_ROLE" in from_env.stderr
    assert not (tmp_path / "pgdata").exists()  # refused before any server was started or reached
