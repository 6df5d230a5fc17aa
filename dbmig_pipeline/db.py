"""Connections: where each database is, and engines that reach it safely.

Invariant: every engine is built from validated settings, the source engine
can only read, and any failure to connect names the environment variable
and shows the URL with its password masked.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from dbmig_pipeline.demo.embedded import EmbeddedServer, ensure_server
from dbmig_pipeline.settings import Settings, SideSettings, mask_url, never_leaves_the_machine, url_secrets

log = logging.getLogger(__name__)

EMBEDDED_SOURCE_DB = "dbmig_legacy"
EMBEDDED_DEST_DB = "dbmig_target"
EMBEDDED_DAGSTER_DB = "dagster"


class DatabaseUnavailable(RuntimeError):
    """A database could not be reached or is not usable as configured."""


class AccessRefused(DatabaseUnavailable):
    """A database was reached, but its role may not do what dbmig needs there, or both sides are one database."""


DAGSTER_ENV = "DAGSTER_PG_URL"


@dataclass(frozen=True)
class Endpoints:
    """The three database URLs in use, after filling in the embedded defaults."""

    source_url: str
    dest_url: str
    dagster_url: str
    embedded: EmbeddedServer | None

    @property
    def uses_embedded(self) -> bool:
        return self.embedded is not None


def resolve_endpoints(settings: Settings) -> Endpoints:
    """URLs from the settings; the embedded server is started only for those unset."""
    urls = (settings.source.url, settings.dest.url, settings.dagster_pg_url)
    if all(urls):
        return Endpoints(*urls, embedded=None)
    server = ensure_server(settings.home)
    defaults = (EMBEDDED_SOURCE_DB, EMBEDDED_DEST_DB, EMBEDDED_DAGSTER_DB)
    resolved = []
    for url, database in zip(urls, defaults):
        if url is None:
            server.ensure_database(database)
            url = server.url(database)
        resolved.append(url)
    return Endpoints(*resolved, embedded=server)


def create_db_engine(url: str, side: SideSettings, settings: Settings, *, read_only: bool, purpose: str) -> Engine:
    """A pooled engine with timeouts, TLS and session settings from `settings`."""
    # ISO dates: what psycopg2 and the COPY reader (engine/copy_read.py) parse, whatever the server's default
    options = ["-c timezone=UTC", "-c datestyle=ISO"]
    if read_only:
        # The source is never written to, whatever rights the role has.
        options.append("-c default_transaction_read_only=on")
    connect_args: dict[str, object] = {
        "connect_timeout": settings.connect_timeout_s,
        "application_name": f"{settings.application_name}-{purpose}"[:63],
        "options": " ".join(options),
        "keepalives": 1,
        "keepalives_idle": 30,
    }
    if not never_leaves_the_machine(url, os.environ):
        connect_args["sslmode"] = side.sslmode
        if side.sslrootcert:
            connect_args["sslrootcert"] = side.sslrootcert
    engine = sa.create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_max_overflow,
        pool_pre_ping=True,
        pool_recycle=settings.pool_recycle_s,
        connect_args=connect_args,
        hide_parameters=True,
    )
    sa.event.listen(engine, "connect", _pin_time_zone)
    return engine


def _pin_time_zone(dbapi_conn, _record) -> None:
    """UTC once more, after the connection started: libpq sends the client's PGTZ as a startup parameter,
    which the server applies after `options`. The text of a timestamptz, and so every content hash
    (`md5(ROW(…)::text)`), depends on the session's zone: two clients with different PGTZ would find
    every row changed."""
    with dbapi_conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
    dbapi_conn.commit()


#: The destination's oldest PostgreSQL: 13 brought `gen_random_uuid()` (the target's keys) and
#: `pg_xact_status()` (a batch whose COMMIT got no answer, engine/commit_fate.py) into the core.
DEST_MIN_SERVER_VERSION = 130000


def check_connection(engine: Engine, side: SideSettings, settings: Settings, *, min_server_version: int = 0) -> None:
    """Connect (with bounded retries) or raise DatabaseUnavailable naming the variable; also if the
    server is older than `min_server_version` (as `server_version_num`).

    With the defaults (10 s timeout, 3 retries) an unreachable server fails in
    well under a minute.
    """
    retrying = Retrying(
        stop=stop_after_attempt(settings.connect_retries + 1) | _no_attempt_past(_connect_budget_s(settings)),
        wait=wait_exponential_jitter(multiplier=0.5, max=5, jitter=0.5),
        retry=retry_if_exception(lambda exc: isinstance(exc, DBAPIError) and not _is_permanent(exc)),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt, engine.connect() as conn:
                version_num, version = conn.execute(sa.text(
                    "SELECT current_setting('server_version_num')::int, current_setting('server_version')")).one()
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        where = _where(side)
        attempts = retrying.statistics.get("attempt_number", settings.connect_retries + 1)
        raise DatabaseUnavailable(
            f"cannot connect to {where} at {mask_url(engine.url)} after "
            f"{attempts} attempt{'s' if attempts != 1 else ''}: {_redact(reason, engine)}{_tls_hint(reason, side)}"
        ) from None
    if version_num < min_server_version:
        raise DatabaseUnavailable(
            f"{side.env_name} at {mask_url(engine.url)} is PostgreSQL {version}; dbmig needs "
            f"{min_server_version // 10000} or later there: point {side.env_name} at a newer server")


#: Seconds within which an unreachable database fails with the default settings (the README's "within a
#: minute", with room for the message).
CONNECT_DEADLINE_S = 55.0


def _connect_budget_s(settings: Settings) -> float:
    """How long the attempts may take in all: a minute with the defaults, what the settings ask where they
    ask for more (attempts × timeout)."""
    return max(CONNECT_DEADLINE_S, (settings.connect_retries + 1) * settings.connect_timeout_s)


def _no_attempt_past(budget_s: float):
    """Stop before an attempt that, as long as the attempts so far, would end after `budget_s`: libpq's
    connect_timeout applies per address, so a host name with two addresses (localhost: ::1 and
    127.0.0.1) that never answer took twice the timeout per attempt, past the minute."""
    def stop(state) -> bool:
        elapsed = state.seconds_since_start or 0.0
        return elapsed + elapsed / max(state.attempt_number, 1) > budget_s
    return stop


#: Connection failures that no retry can fix (credentials, names, certificates): reported at once.
_PERMANENT = ("password authentication failed", "no password supplied", "does not exist",
              "no pg_hba.conf entry", "certificate verify failed", "does not match host name",
              "root certificate file", "does not support SSL")


def _is_permanent(exc: DBAPIError) -> bool:
    text = str(exc.orig or exc)
    return any(marker in text for marker in _PERMANENT)


def _tls_hint(reason: str, side: SideSettings) -> str:
    """What to change when a TLS check refused the server, naming the variables involved."""
    prefix = side.env_name.removesuffix("_URL")
    mode = f"{prefix}_SSLMODE={side.sslmode}"
    if side.env_name == DAGSTER_ENV:  # libpq's parameters in the URL itself, no variables of their own
        prefix, mode = f"{DAGSTER_ENV}'s ?sslrootcert=", f"sslmode={side.sslmode} in {DAGSTER_ENV}"
    if "does not match host name" in reason:
        return (f" (TLS: {mode} checks that the server's certificate names the host of {side.env_name}; "
                "connect by a name the certificate carries)")
    if "certificate verify failed" in reason:
        ca = side.sslrootcert or "not set, so libpq's default ~/.postgresql/root.crt"
        return f" (TLS: the server's certificate is not signed by the CA of {_rootcert(prefix)}, {ca})"
    if "root certificate file" in reason:
        return f" (TLS: {mode} verifies the server against a CA certificate: set {_rootcert(prefix)})"
    if "does not support SSL" in reason:
        return f" (TLS: {mode} requires an encrypted connection and this server offers none)"
    return ""


def _rootcert(prefix: str) -> str:
    return prefix if prefix.endswith("=") else f"{prefix}_SSLROOTCERT"


#: The variable behind each engine's sessions, by the suffix of their application_name (create_db_engine).
_PURPOSE_VARIABLES = {"-source": "DBMIG_SOURCE_URL", "-dest": "DBMIG_DEST_URL"}


def privilege_refusal(exc: BaseException) -> str | None:
    """The message for a statement the server refused for want of a privilege (InsufficientPrivilege,
    raised as is or wrapped by SQLAlchemy), naming the variable of the database that refused it;
    None for any other error. For what the start-up checks cannot foresee (a function, a column)."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, psycopg2.errors.InsufficientPrivilege):
        return None
    reason = (str(orig).strip().splitlines() or ["permission denied"])[0]
    variable, user = "the database's URL (DBMIG_SOURCE_URL or DBMIG_DEST_URL)", None
    try:
        params = psycopg2.extensions.parse_dsn(orig.cursor.connection.dsn)  # kept after the connection closed
        user = params.get("user")
        variable = next((v for suffix, v in _PURPOSE_VARIABLES.items()
                         if params.get("application_name", "").endswith(suffix)), variable)
    except (AttributeError, psycopg2.Error):
        pass
    role = f"role {user!r} of " if user else "the role of "
    return (f"{role}{variable} was refused: {reason}; grant it what dbmig needs ({_grants_hint()}) "
            f"or point {variable.split(' (')[0]} at a role that has it")


def _grants_hint() -> str:
    from dbmig_pipeline.access import GRANTS_HINT

    return GRANTS_HINT


def _redact(text: str, engine: Engine) -> str:
    for secret in url_secrets(engine.url):
        text = text.replace(secret, "***")
    return text


@dataclass
class Databases:
    """Both engines of one process, checked and ready."""

    settings: Settings
    endpoints: Endpoints
    source: Engine
    dest: Engine
    dagster_checked: bool = False

    def dispose(self) -> None:
        self.source.dispose()
        self.dest.dispose()

    def check_dagster_storage(self) -> None:
        """Reach DAGSTER_PG_URL and check its role (once per process): before any Dagster instance opens it."""
        if not self.dagster_checked:
            problems = dagster_storage_problems(self.endpoints, self.settings)
            if problems:
                raise AccessRefused("\n".join(problems))
            self.dagster_checked = True


def open_databases(settings: Settings, *, check: bool = True, dagster_storage: bool = False) -> Databases:
    """Engines for source and destination; with `check`, both are reached first, and `check_access` runs:
    each role may do what dbmig needs, and the two are different databases. `dagster_storage` also
    reaches and checks DAGSTER_PG_URL (for the commands that run Dagster jobs, and `dbmig config`).

    Nothing is written anywhere here, so a wrong URL, a role without its privileges or a server that
    is down fails before any run touches the target.
    """
    endpoints = resolve_endpoints(settings)
    source = create_db_engine(endpoints.source_url, settings.source, settings, read_only=True, purpose="source")
    dest = create_db_engine(endpoints.dest_url, settings.dest, settings, read_only=False, purpose="dest")
    databases = Databases(settings, endpoints, source, dest)
    if check:
        try:
            check_connection(source, settings.source, settings)
            check_connection(dest, settings.dest, settings, min_server_version=DEST_MIN_SERVER_VERSION)
            check_access(databases, dagster_storage=dagster_storage)
        except DatabaseUnavailable:
            databases.dispose()
            raise
    return databases


def _where(side: SideSettings) -> str:
    return side.env_name if side.url else f"the embedded database (set {side.env_name} to use your own)"


def check_access(databases: Databases, *, dagster_storage: bool = False) -> None:
    """AccessRefused, listing every problem, unless source and destination are two databases, the source's
    role may read every legacy table the mapping reads, the destination's may create or use `app` and
    `dbmig`, and (with `dagster_storage`) DAGSTER_PG_URL is reachable and usable by its role. Reads
    catalogs only."""
    from dbmig_pipeline import access

    settings = databases.settings
    with databases.source.connect() as src, databases.dest.connect() as dst:
        dest_identity = access.identity(dst)
        if access.identity(src).same_database(dest_identity):
            raise AccessRefused(
                f"{_where(settings.source)} and {_where(settings.dest)} reach the same database "
                f"({dest_identity.database!r} of one server: {mask_url(databases.source.url)} and "
                f"{mask_url(databases.dest.url)}): dbmig would write the target into the legacy database. "
                f"Point {settings.dest.env_name} at the new system's database")
        problems = access.source_problems(src, settings.source.env_name) + access.dest_problems(
            dst, settings.dest.env_name)
    if dagster_storage:
        problems += dagster_storage_problems(databases.endpoints, settings)
        databases.dagster_checked = True
    if problems:
        raise AccessRefused("\n".join(problems))


def dagster_side(endpoints: Endpoints, settings: Settings) -> SideSettings:
    """DAGSTER_PG_URL as a side for messages: its TLS parameters are libpq's, in the URL."""
    query = sa.engine.make_url(endpoints.dagster_url).query
    return SideSettings(env_name=DAGSTER_ENV, url=settings.dagster_pg_url,
                        sslmode=str(query.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"),
                        sslrootcert=str(query["sslrootcert"]) if query.get("sslrootcert") else None)


def dagster_storage_problems(endpoints: Endpoints, settings: Settings) -> list[str]:
    """Reach Dagster's run storage as dbmig reaches the others (timeout, bounded retries: DatabaseUnavailable
    naming DAGSTER_PG_URL, masked); then what its role may not do there (dagster-postgres creates its
    tables in the first schema of the search path when they are missing, and writes them)."""
    from dbmig_pipeline import access

    engine = sa.create_engine(endpoints.dagster_url, poolclass=sa.pool.NullPool, hide_parameters=True,
                              connect_args={"connect_timeout": settings.connect_timeout_s,
                                            "application_name": f"{settings.application_name}-dagster-check"[:63]})
    try:
        check_connection(engine, dagster_side(endpoints, settings), settings)
        with engine.connect() as conn:
            return access.dagster_problems(conn, DAGSTER_ENV)
    finally:
        engine.dispose()
