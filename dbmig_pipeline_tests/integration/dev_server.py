"""`dbmig dev` in a child process of its own session, on the test's databases, until its UI answers."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from dbmig_pipeline_tests.integration.security.cli_runner import DBMIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_dev(tmp_path, make_database, *args: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """`dbmig dev ARGS` and its port, once /server_info answers; its whole process group is ended afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))}
    env.update({"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": make_database("legacy"),
                "DBMIG_DEST_URL": make_database("target"), "DAGSTER_PG_URL": make_database("dagster")})
    log_path = tmp_path / "ui.log"
    log = log_path.open("w")
    process = subprocess.Popen([str(DBMIG), "dev", *args, "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
        yield process, port
    finally:
        _end_group(process)
        log.close()


def _end_group(process: subprocess.Popen) -> None:
    """The webserver and its code server with it: SIGTERM to the group, SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
