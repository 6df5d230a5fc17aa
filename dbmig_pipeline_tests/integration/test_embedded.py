"""The embedded default: started once, reused, recovered after a crash."""
import os
import signal
import threading
import time

import psycopg2
import pytest

from dbmig_pipeline.demo.embedded import _live_postmaster, _wait_until_reachable, ensure_server


def _pid(server) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


def test_second_start_reuses_the_running_server(pg_server):
    again = ensure_server(pg_server.pgdata.parent)
    assert again == pg_server
    assert _pid(again) == _pid(pg_server)


def test_the_clients_pgoptions_do_not_reach_the_servers_own_connections(pg_server, monkeypatch):
    """A malformed PGOPTIONS ("-c") made the server refuse the reuse check's connection, which read as a
    server still starting: waited for ten minutes, then "did not accept connections"."""
    monkeypatch.setenv("PGOPTIONS", "-c")
    found: list = []
    worker = threading.Thread(target=lambda: found.append(ensure_server(pg_server.pgdata.parent)), daemon=True)
    worker.start()
    worker.join(60)
    assert found == [pg_server], "ensure_server waited for a server that runs"
    assert pg_server.ensure_database("pgoptions_check") is True
    pg_server.drop_database("pgoptions_check")


def test_databases_are_created_once(pg_server):
    assert pg_server.ensure_database("reuse_check") is True
    assert pg_server.ensure_database("reuse_check") is False
    pg_server.drop_database("reuse_check")


def test_a_server_killed_hard_is_recovered(tmp_path):
    server = ensure_server(tmp_path / "home")
    pid = _pid(server)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    recovered = ensure_server(tmp_path / "home")
    try:
        assert _pid(recovered) != pid
        with psycopg2.connect(recovered.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        recovered.stop()


def test_a_stale_pid_file_naming_another_process_is_recovered(tmp_path):
    server = ensure_server(tmp_path / "home")
    server.stop()
    # A leftover postmaster.pid that names a live process which is not PostgreSQL.
    pid_file = server.pgdata / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{server.pgdata}\n0\n5432\n{server.socket_dir}\n\n  0 0\nready\n")
    recovered = ensure_server(tmp_path / "home")
    try:
        with psycopg2.connect(recovered.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SHOW max_connections")
            assert int(cur.fetchone()[0]) >= 200
    finally:
        recovered.stop()


def test_url_points_at_the_unix_socket(pg_server):
    url = pg_server.url("postgres")
    assert url.startswith("postgresql+psycopg2://postgres@/postgres?host=")
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host=str(pg_server.socket_dir), port=pg_server.port, user="postgres",
                         dbname="no_such_database", connect_timeout=3)


def test_a_server_that_answers_nobody_for_a_while_is_kept(tmp_path):
    """A server replaying its WAL after a crash answers nothing for a while: it must not be replaced."""
    server = ensure_server(tmp_path / "home")
    pid = _pid(server)
    os.kill(pid, signal.SIGSTOP)  # alive, holding its data folder, answering nobody: like a long recovery
    resume = threading.Timer(6.0, os.kill, (pid, signal.SIGCONT))
    resume.start()
    try:
        again = ensure_server(tmp_path / "home")
        assert _pid(again) == pid
        with psycopg2.connect(again.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        resume.cancel()
        os.kill(pid, signal.SIGCONT)
        server.stop()


def test_only_a_live_postgres_of_this_folder_is_waited_for(tmp_path):
    server = ensure_server(tmp_path / "home")
    pid = _pid(server)
    assert _live_postmaster(server.pgdata) == pid
    assert _live_postmaster(tmp_path) is None  # no pid file
    os.kill(pid, signal.SIGSTOP)  # starting, as far as anyone can tell
    threading.Timer(2.0, os.kill, (pid, signal.SIGCONT)).start()
    try:
        assert _wait_until_reachable(server.pgdata, pid, timeout=30)
    finally:
        os.kill(pid, signal.SIGCONT)
    server.stop()
    assert _live_postmaster(server.pgdata) is None  # gone
    (server.pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{server.pgdata}\n")  # a live non-postgres
    assert _live_postmaster(server.pgdata) is None
    assert not _wait_until_reachable(server.pgdata, 2 ** 22 + 1, timeout=30)  # no such process: at once
