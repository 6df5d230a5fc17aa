"""One pass of an entity at a time (engine/pass_lock.py), whoever started the other one."""
from __future__ import annotations

import pytest

from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.engine.pass_lock import EntityBusy, entity_pass_lock
from dbmig_pipeline_tests.integration.engine_helpers import (
    assert_target_matches_oracle,
    pair_fixture,  # noqa: F401 (the `pair` fixture)
)

SCALE = 0.0002


def _written_about(pair, entity: str) -> list[int]:
    """Rows a pass of `entity` writes anywhere: target, ledger, checkpoints, audit."""
    return [pair.dst(f"SELECT count(*) FROM {table} WHERE {where}", e=entity)[0][0] for table, where in (
        (f"app.{entity}", "true"), ("dbmig.row_ledger", "entity = :e"),
        ("dbmig.migration_control", "entity = :e"), ("dbmig.audit_log", "entity = :e"))]


def test_a_second_pass_of_an_entity_stops_at_once_naming_the_first_and_writes_nothing(pair):
    seed_legacy(pair.source_url, scale=SCALE)
    with entity_pass_lock(pair.dest, "offices"):  # a pass of offices running elsewhere
        with pytest.raises(EntityBusy, match=r"^offices: another pass of this entity is running "
                                             r"\(destination session pid \d+, .*\); this one stopped before writing"):
            pair.run("offices")
        assert _written_about(pair, "offices") == [0, 0, 0, 0]
        assert pair.run("jaws").written > 0  # other entities go on

    pair.run("offices")  # the first pass ended: the lock went with it
    assert_target_matches_oracle(pair, ["offices"])


def test_a_pass_that_fails_leaves_no_lock_behind(pair):
    seed_legacy(pair.source_url, scale=SCALE)

    def fail(event) -> None:
        raise RuntimeError("the process is going down")

    with pytest.raises(RuntimeError, match="going down"):
        pair.run("offices", on_progress=fail)
    pair.run("offices")
    assert_target_matches_oracle(pair, ["offices"])
