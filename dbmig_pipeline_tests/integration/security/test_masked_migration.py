"""A masked migration (DBMIG_MASK_PII) leaves no original personal value in the target."""
import datetime as dt
import re

import pandas as pd
import sqlalchemy as sa

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.entities import common
from dbmig_pipeline_tests.integration.security.cli_runner import invoke_cli, run_cli

MASK_KEY = "integration-test-mask-key-0001"
#: entity → (source table, {target PII column: source column})
PII = {
    "offices": {"email": "email", "phone_e164": "phone"},
    "doctors": {"given_name": "first_name", "family_name": "last_name", "email": "email", "phone_e164": "phone",
                "license_number": "license_no"},
    "patients": {"given_name": "first_name", "family_name": "last_name", "email": "email", "phone_e164": "phone",
                 "notes": "notes", "date_of_birth": "birth_date"},
}


def _frame(url: str, query: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(sa.text(query), conn)
    finally:
        engine.dispose()


def _original(column: str, rows: pd.DataFrame) -> pd.Series:
    """The value as the unmasked transform would have written it."""
    values = rows[column]
    if column == "email":
        return common.email(values)[0]
    if column == "phone":
        return common.phone_e164(values)[0]
    if column == "birth_date":  # the legacy "unknown" sentinel and dates after creation become NULL
        created_on = pd.to_datetime(rows["created_at"], utc=True).dt.tz_localize(None).dt.normalize()
        kept = (values != dt.date(1900, 1, 1)) & (pd.to_datetime(values) <= created_on)
        return values.astype(object).where(values.notna() & kept, None)
    return common.trimmed(values)


def test_a_masked_migration_leaves_no_original_pii_in_the_target(tmp_path, make_database):
    source = make_database("legacy")
    seed_legacy(source, scale=0.0005)
    env = {"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": source, "DBMIG_DEST_URL": make_database("target"),
           "DAGSTER_PG_URL": make_database("dagster"), "DBMIG_MASK_PII": "true"}
    refused = invoke_cli("migrate", env=env)
    assert refused.returncode == 2 and "DBMIG_MASK_PII=true needs DBMIG_MASK_KEY" in refused.stderr

    result = run_cli("migrate", env={**env, "DBMIG_MASK_KEY": MASK_KEY}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    dest = env["DBMIG_DEST_URL"]
    compared = 0
    for entity, columns in PII.items():
        src = _frame(source, f"SELECT * FROM public.{entity}")
        dst = _frame(dest, f"SELECT * FROM app.{entity}")
        assert len(dst) > 0
        aligned = src.set_index("id").loc[dst["legacy_id"]].reset_index()  # the source row of each target row
        for target, source_column in columns.items():
            original = _original(source_column, aligned)
            masked = dst[target].astype(object).where(dst[target].notna(), None)
            assert (masked.isna() == original.isna()).all(), f"{entity}.{target}: NULLs must stay NULL"
            present = masked.notna()
            assert present.any(), f"{entity}.{target} has no values to compare"
            assert not (masked[present] == original[present]).any(), f"{entity}.{target} kept an original value"
            compared += int(present.sum())
            if target in ("email", "notes", "license_number"):  # hex pseudonyms: no value of anybody survives
                assert not set(masked.dropna()) & set(_original(source_column, src).dropna())
        assert all(re.fullmatch(r"u_[0-9a-f]{16}@example\.invalid", e) for e in dst["email"].dropna())
        assert all(re.fullmatch(r"\+1555\d{7}", p) for p in dst["phone_e164"].dropna())
        if entity == "patients":
            births = dst[dst["date_of_birth"].notna()]
            shift = pd.to_datetime(births["date_of_birth"]) - pd.to_datetime(
                aligned.loc[births.index, "birth_date"])
            assert shift.abs().max() <= pd.Timedelta(days=180) and (shift != pd.Timedelta(0)).all()
            created = pd.to_datetime(births["created_at"], utc=True).dt.date
            assert all(b <= c for b, c in zip(births["date_of_birth"], created))
            assert all(isinstance(b, dt.date) for b in births["date_of_birth"])
    assert compared > 100
    # Warnings about bad e-mails and phones would quote them: their text is withheld.
    warnings = _frame(dest, "SELECT column_name, detail FROM dbmig.row_warnings "
                            "WHERE column_name IN ('email', 'phone_e164', 'date_of_birth')")
    assert len(warnings) > 0 and warnings["detail"].str.contains("withheld").all()
    # Joins still hold: every patient's doctor, every doctor's office, resolved.
    orphans = _frame(dest, "SELECT count(*) AS n FROM app.patients p LEFT JOIN app.doctors d ON d.id = p.doctor_id "
                           "WHERE d.id IS NULL")
    assert orphans["n"][0] == 0
