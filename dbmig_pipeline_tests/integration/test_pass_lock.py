"""One pass of an entity at a time (engine/pass_lock.py), whoever started the other one."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from dbmig_pipeline.db import create_db_engine
from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine.pass_lock import EntityBusy, entity_pass_lock
from dbmig_pipeline.engine.quarantine import retry_errors
from dbmig_pipeline.engine.reconcile import reconcile_entity
from dbmig_pipeline.engine.sync import RunInfo
from dbmig_pipeline.settings import Settings
from dbmig_pipeline_tests.integration.engine_helpers import (
    SPECS,
    Pair,
    assert_target_matches_oracle,
    pair_fixture,  # noqa: F401 (the `pair` fixture)
)

SCALE = 0.0002


@pytest.fixture(name="pooled")
def pooled_fixture(pair: Pair, tmp_path) -> Iterator[Pair]:
    """The seeded `pair` through engines built as dbmig builds them: pooled, so a connection given
    back keeps its session (and any lock it holds) for the next pass."""
    seed_legacy(pair.source_url, scale=SCALE)
    settings = Settings.from_env({"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": pair.source_url,
                                  "DBMIG_DEST_URL": pair.dest_url})
    source = create_db_engine(pair.source_url, settings.source, settings, read_only=True, purpose="source")
    dest = create_db_engine(pair.dest_url, settings.dest, settings, read_only=False, purpose="dest")
    yield Pair(pair.source_url, pair.dest_url, source, dest)
    source.dispose()
    dest.dispose()


def _written_about(pair: Pair, entity: str) -> list[int]:
    """Rows a pass of `entity` writes anywhere: target, ledger, checkpoints, audit."""
    return [pair.dst(f"SELECT count(*) FROM {table} WHERE {where}", e=entity)[0][0] for table, where in (
        (f"app.{entity}", "true"), ("dbmig.row_ledger", "entity = :e"),
        ("dbmig.migration_control", "entity = :e"), ("dbmig.audit_log", "entity = :e"))]


def test_a_second_pass_of_an_entity_stops_at_once_naming_the_first_and_writes_nothing(pair, pooled):
    with entity_pass_lock(pooled.dest, "offices"):  # a pass of offices running elsewhere
        with pytest.raises(EntityBusy, match=r"^offices: another pass of this entity is running "
                                             r"\(destination session pid \d+, application 'dbmig-dest', .*\); "
                                             r"this one stopped before writing anything"):
            pooled.run("offices")
        assert _written_about(pooled, "offices") == [0, 0, 0, 0]
        assert pooled.run("jaws").written > 0  # other entities go on

    pooled.run("offices")  # the first pass ended: its lock went with it
    assert_target_matches_oracle(pair, ["offices"])  # the oracle writes temp functions


def test_a_pass_that_fails_or_succeeds_leaves_no_lock_behind(pair, pooled):
    def fail(event) -> None:
        raise RuntimeError("the process is going down")

    with pytest.raises(RuntimeError, match="going down"):
        pooled.run("offices", on_progress=fail)
    pooled.run("offices")
    assert pooled.run("offices").written == 0  # and a pass that succeeds unlocks (its connection stays pooled)
    assert_target_matches_oracle(pair, ["offices"])  # the oracle writes temp functions


def test_repairs_wait_for_no_pass_either(pair, pooled):
    """Reconciliation and `dbmig errors retry` write the source's current rows whatever their timestamps:
    they hold the same lock, so no pass writes between their read and their write."""
    pooled.run("offices")
    quarantined = pair.dst("SELECT legacy_id FROM dbmig.row_errors WHERE entity = 'offices' AND resolved_at IS NULL "
                           "ORDER BY 1")
    assert quarantined
    renamed = pair.src("SELECT min(id) FROM offices")[0][0]
    pair.src("UPDATE offices SET name = 'Renamed Quietly' WHERE id = :i", i=renamed)  # no updated_at bump
    run = RunInfo("repair-1", "pytest", batch_size=50)

    with entity_pass_lock(pooled.dest, "offices"):
        with pytest.raises(EntityBusy, match="^offices: another pass of this entity is running"):
            reconcile_entity(pooled.source, pooled.dest, SPECS["offices"], SPECS, run, guard_share=0.5)
        [retried] = retry_errors(pooled.source, pooled.dest, [SPECS["offices"]], SPECS, run)
        assert retried.error.startswith("offices: another pass of this entity is running")
        assert sorted(retried.still_open) == [i for (i,) in quarantined] and retried.loaded == []
        assert pair.dst("SELECT count(*) FROM dbmig.audit_log WHERE operation = 'reconciled'") == [(0,)]

    assert reconcile_entity(pooled.source, pooled.dest, SPECS["offices"], SPECS, run, guard_share=0.5).repaired == 1
    assert pair.dst("SELECT display_name FROM app.offices WHERE legacy_id = :i", i=renamed) == [("Renamed Quietly",)]
