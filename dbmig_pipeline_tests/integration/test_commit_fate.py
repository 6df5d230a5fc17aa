"""What became of a COMMIT whose answer never came (engine/commit_fate.py), asked of a real server."""
from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
import sqlalchemy as sa

from dbmig_pipeline.engine.commit_fate import CommitFate
from dbmig_pipeline.engine.errors import CommitInDoubt, is_technical


@pytest.fixture(name="conns")
def conns_fixture(make_database) -> Iterator[tuple]:
    """Two sessions of one database: the writer's, and the one its retry asks on."""
    url = sa.engine.make_url(make_database("fate")).set(drivername="postgresql").render_as_string(hide_password=False)
    writer, asker = psycopg2.connect(url), psycopg2.connect(url)
    with writer.cursor() as cur:
        cur.execute("CREATE TABLE t (n int)")
    writer.commit()
    yield writer, asker
    writer.close()
    asker.close()


def _unanswered(writer) -> CommitFate:
    """A fate whose write was noted (as `commit` notes it) and whose COMMIT has not been seen to end."""
    fate = CommitFate()
    with writer.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
        cur.execute("SELECT pg_current_xact_id()::text")
        fate.xid = cur.fetchone()[0]
    return fate


def _rows(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM t")
        count = cur.fetchone()[0]
    conn.rollback()
    return count


def test_an_answered_commit_leaves_nothing_to_ask_and_runs_its_bookkeeping_once(conns):
    writer, asker = conns
    done: list[int] = []
    fate = CommitFate()
    with writer.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
    fate.commit(writer, "result", lambda: done.append(1))
    assert done == [1] and fate.xid is None
    assert fate.went_through(asker) is False  # nothing unanswered: the retry goes ahead as usual
    assert _rows(asker) == 1


def test_a_commit_that_happened_is_known_to_have_happened(conns):
    writer, asker = conns
    fate = _unanswered(writer)
    writer.commit()  # the server committed; suppose the answer was lost
    assert fate.went_through(asker) is True
    assert fate.xid is None and fate.went_through(asker) is False  # asked once
    assert asker.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_a_commit_that_did_not_happen_is_applied_again(conns):
    writer, asker = conns
    fate = _unanswered(writer)
    writer.rollback()  # the session died before the COMMIT reached the server
    assert fate.went_through(asker) is False
    assert _rows(asker) == 0


def test_a_transaction_still_ending_is_neither_applied_again_nor_taken_as_done(conns):
    writer, asker = conns
    fate = _unanswered(writer)
    with pytest.raises(CommitInDoubt, match="still in progress") as doubt:
        fate.went_through(asker)
    assert is_technical(doubt.value)  # retried with backoff, like the dropped connection itself
    writer.commit()
    assert fate.went_through(asker) is True  # the next retry learns the outcome
