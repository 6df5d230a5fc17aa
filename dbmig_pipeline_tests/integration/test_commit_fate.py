"""What became of a COMMIT whose answer never came (engine/commit_fate.py), asked of a real server."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import psycopg2
import pytest
import sqlalchemy as sa

from dbmig_pipeline.engine.commit_fate import CommitFate
from dbmig_pipeline.engine.errors import CommitInDoubt, is_technical

ROLE = "fate_asker"


def _dsn(url: str, **changes) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql", **changes).render_as_string(hide_password=False)


@pytest.fixture(name="url")
def url_fixture(make_database) -> str:
    url = _dsn(make_database("fate"))
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (n int)")
    return url


@pytest.fixture(name="conns")
def conns_fixture(url) -> Iterator[tuple]:
    """Two sessions of one database: the writer's, and the one its retry asks on."""
    writer, asker = psycopg2.connect(url), psycopg2.connect(url)
    yield writer, asker
    writer.close()
    asker.close()


def _unanswered(writer) -> CommitFate:
    """A fate whose write was noted (as `commit` notes it) and whose COMMIT has not been seen to end."""
    fate = CommitFate()
    with writer.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
        fate.note(cur)
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


def test_a_transaction_still_open_has_its_session_ended_and_is_applied_again(conns):
    """The COMMIT never reached the server, whose session still holds the transaction (and its row
    locks): the retry ends that session, so the transaction is rolled back and the write goes again."""
    writer, asker = conns
    fate = _unanswered(writer)
    assert fate.went_through(asker) is False
    assert _rows(asker) == 0
    with pytest.raises(psycopg2.OperationalError):
        writer.commit()  # its session was ended


def test_a_transaction_that_cannot_be_ended_is_neither_applied_again_nor_taken_as_done(url, conns):
    """Asked by a role that may not end the writer's session: CommitInDoubt, technical, so the
    retry waits and asks again; by then the writer's COMMIT has come through."""
    writer, _ = conns
    with psycopg2.connect(url) as admin, admin.cursor() as cur:
        cur.execute(f"DROP ROLE IF EXISTS {ROLE}")
        cur.execute(f"CREATE ROLE {ROLE} LOGIN")
    try:
        asker = psycopg2.connect(_dsn(url, username=ROLE))
        try:
            fate = _unanswered(writer)
            with pytest.raises(CommitInDoubt, match="still open on the destination server") as doubt:
                fate.went_through(asker)
            assert is_technical(doubt.value)
            assert fate.xid is not None
            writer.commit()
            assert fate.went_through(asker) is True
        finally:
            asker.close()
    finally:
        with psycopg2.connect(url) as admin, admin.cursor() as cur:
            cur.execute(f"DROP ROLE {ROLE}")


def test_on_another_server_instance_the_id_is_not_trusted_and_the_write_goes_again(conns, caplog):
    """After a crash or a failover a transaction id can be handed out again: noted on another
    instance (here: another start time), it is not asked about."""
    writer, asker = conns
    fate = _unanswered(writer)
    writer.commit()
    fate.server_started = datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert fate.went_through(asker) is False
    assert "restarted or failed over" in caplog.text


def test_an_id_the_server_does_not_know_is_not_this_transactions(conns):
    _, asker = conns
    fate = CommitFate()
    with asker.cursor() as cur:
        fate.note(cur)
    asker.rollback()
    fate.xid = str(int(fate.xid) + 10_000_000)  # not handed out yet
    assert fate.went_through(asker) is False
    assert asker.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
