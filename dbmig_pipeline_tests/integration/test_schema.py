"""DDL: idempotent, versioned, and respectful of an existing target schema."""
import pytest
import sqlalchemy as sa

from dbmig_pipeline.schema import (
    SchemaMismatch,
    apply_control_schema,
    apply_legacy_schema,
    contract_target_columns,
    control_schema_version,
    control_versions,
    ensure_target_schema,
)


@pytest.fixture
def engine(make_database):
    eng = sa.create_engine(make_database("schema"))
    yield eng
    eng.dispose()


def _tables(engine, schema):
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            ).scalars()
        )


def test_legacy_schema_applies_twice(engine):
    apply_legacy_schema(engine)
    apply_legacy_schema(engine)
    assert _tables(engine, "public") == {"offices", "doctors", "patients", "orders", "jaws", "system_messages"}
    with engine.connect() as conn:
        nullable = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema='public' AND column_name='updated_at' AND is_nullable='YES'"
            )
        ).scalars().all()
        indexes = conn.execute(
            sa.text("SELECT count(*) FROM pg_indexes WHERE schemaname='public' AND indexdef LIKE '%(updated_at, id)%'")
        ).scalar_one()
    assert nullable == ["system_messages"]
    assert indexes == 6


def test_control_schema_is_versioned_and_idempotent(engine):
    newest = control_versions()[-1].version
    assert apply_control_schema(engine) == [v.version for v in control_versions()]
    assert apply_control_schema(engine) == []
    assert control_schema_version(engine) == newest
    assert {"migration_control", "row_errors", "audit_log", "row_ledger", "schema_snapshots"} <= _tables(engine, "dbmig")
    with engine.connect() as conn:
        columns = set(
            conn.execute(
                sa.text("SELECT column_name FROM information_schema.columns WHERE table_schema='dbmig' AND table_name='migration_control'")
            ).scalars()
        )
    assert {"entity", "partition_key", "status", "cursor_updated_at", "cursor_id", "rows_written", "run_id", "updated_at"} <= columns


def test_audit_log_refuses_update_and_delete(engine):
    apply_control_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO dbmig.audit_log (operation) VALUES ('test')"))
    for statement in ("UPDATE dbmig.audit_log SET operation = 'x'", "DELETE FROM dbmig.audit_log",
                      "TRUNCATE dbmig.audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))


def test_target_schema_created_when_missing_then_left_alone(engine):
    assert ensure_target_schema(engine) is True
    assert _tables(engine, "app") == set(contract_target_columns())
    assert ensure_target_schema(engine) is False


def test_an_existing_matching_target_is_used_as_it_is(engine):
    ensure_target_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO app.offices (legacy_id, created_at, display_name, address, active) "
                             "VALUES (1, now(), 'kept', '{}', true)"))
    assert ensure_target_schema(engine) is False
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT display_name FROM app.offices")).scalar_one() == "kept"


def test_a_missing_table_is_created_alongside_existing_ones(engine):
    ensure_target_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE app.jaws"))
    assert ensure_target_schema(engine) is True
    assert "jaws" in _tables(engine, "app")


def test_a_target_that_differs_from_the_contract_is_refused_with_the_difference(engine):
    ensure_target_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE app.orders ALTER COLUMN price_cents TYPE numeric"))
        conn.execute(sa.text("ALTER TABLE app.patients DROP COLUMN notes"))
    with pytest.raises(SchemaMismatch) as info:
        ensure_target_schema(engine)
    message = str(info.value)
    assert "app.orders.price_cents is numeric, the contract says bigint" in message
    assert "app.patients.notes is missing" in message
