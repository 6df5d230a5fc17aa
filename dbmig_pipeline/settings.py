"""One settings object, read from the environment and validated at start-up.

Invariant: a wrong setting fails here, before any database is touched, with a
message that names the environment variable at fault and never shows a
password.
"""
from __future__ import annotations

import difflib
import multiprocessing
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
ENVIRONMENTS = ("development", "test", "staging", "production")
#: DBMIG_DELETE_GUARD_MIN_ROWS's default: fewer vanished rows never trip the delete guard (engine/reconcile.py)
DEFAULT_DELETE_GUARD_MIN_ROWS = 1000
#: How the steps of daemon- and UI-launched runs start (decision 0011).
STEP_START_METHODS = ("forkserver", "spawn")


def default_step_start_method() -> str:
    """Forked from a preloaded server on Linux; fresh interpreters elsewhere (macOS: forking after system
    frameworks load is unsafe, which is why CPython spawns there too; Windows has no forkserver)."""
    return "forkserver" if sys.platform == "linux" and "forkserver" in multiprocessing.get_all_start_methods() \
        else "spawn"
#: strict: every schema difference halts; normal: breaking ones halt, additive ones warn;
#: lenient: only dropped or retyped columns that the mapping reads (or the load writes) halt
DRIFT_STRICTNESS = ("strict", "normal", "lenient")


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names the variable."""


#: Every DBMIG_ variable dbmig reads (here, and `dbmig grants`'s in cli_security.py). Any other
#: DBMIG_ name is refused at start-up: a misspelt setting would otherwise be silently ignored.
KNOWN_VARIABLES = frozenset({
    "DBMIG_HOME", "DBMIG_SOURCE_URL", "DBMIG_DEST_URL", "DBMIG_SSLMODE", "DBMIG_SOURCE_SSLMODE",
    "DBMIG_DEST_SSLMODE", "DBMIG_SOURCE_SSLROOTCERT", "DBMIG_DEST_SSLROOTCERT", "DBMIG_ALLOW_TLS_REQUIRE",
    "DBMIG_BATCH_SIZE", "DBMIG_CHECKPOINT_EVERY", "DBMIG_WRITERS", "DBMIG_BATCH_RETRIES", "DBMIG_POOL_SIZE",
    "DBMIG_POOL_MAX_OVERFLOW", "DBMIG_POOL_RECYCLE_SECONDS", "DBMIG_CONNECT_TIMEOUT", "DBMIG_CONNECT_RETRIES",
    "DBMIG_LOOKBACK_SECONDS", "DBMIG_PARTITION_START", "DBMIG_DELETE_GUARD_PERCENT",
    "DBMIG_DELETE_GUARD_MIN_ROWS", "DBMIG_AUTOMATION", "DBMIG_SYNC_INTERVAL_MINUTES", "DBMIG_ALERT_WEBHOOK_URL",
    "DBMIG_MASK_PII", "DBMIG_MASK_KEY", "DBMIG_ENV", "DBMIG_DRIFT_STRICTNESS", "DBMIG_STEP_START_METHOD",
    "DBMIG_APPLICATION_NAME", "DBMIG_ADMIN_URL", "DBMIG_SOURCE_ADMIN_URL", "DBMIG_SOURCE_ROLE",
    "DBMIG_DEST_ROLE", "DBMIG_SOURCE_ROLE_PASSWORD", "DBMIG_DEST_ROLE_PASSWORD",
})


def refuse_unknown_variables(env: Mapping[str, str]) -> None:
    """A DBMIG_ variable dbmig does not read is a misspelling (say, BATCHSIZE for BATCH_SIZE): refused, with the
    closest real name, instead of running with the default the user meant to change. Names only:
    a value may be a secret."""
    unknown = sorted(name for name in env if name.startswith("DBMIG_") and name not in KNOWN_VARIABLES)
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.75)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise ConfigError(f"{', '.join(hints)}: not a dbmig setting; fix the name or unset it "
                      "(README \"Configuration\" lists every setting)")


#: The form every URL variable takes, shown when a value is not one.
URL_FORM = "postgresql://user:password@host:5432/dbname"
#: libpq's password parameters in a URL's query (`?password=`, `&sslpassword=`): up to the next `&`.
QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)
#: The same as libpq key=value settings (`password=…`, `password='a b'`): up to the next blank.
KEYWORD_PASSWORD = re.compile(r"((?<![\w?&])(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE)
_KEYWORD_DSN = re.compile(r"\s*[A-Za-z_]+\s*=")


def redact_secrets(text: str) -> str:
    """`text` with anything password-like replaced by ***: key=value and query `password=` /
    `sslpassword=`, and a URL's `user:password@`, taken to end at the last `@` (a password
    may hold an unencoded `@`; hiding too much is safe, too little is not)."""
    text = QUERY_PASSWORD.sub(r"\1***", text)
    text = KEYWORD_PASSWORD.sub(r"\1***", text)
    if _KEYWORD_DSN.match(text):
        return text  # libpq key=value: its only secrets are the password settings
    head, at, rest = text.rpartition("@")
    if not at:
        return text
    scheme, sep, userinfo = head.partition("://") if "://" in head else ("", "", head)
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon and re.fullmatch(r"[\w.%-]*", user) else "***"
    return f"{scheme}{sep}{shown}@{rest}"


def mask_url(url: str | URL | None) -> str:
    """The URL with every password (user info, `?password=`, `?sslpassword=`) replaced by ***, safe to
    print anywhere."""
    if url is None:
        return "(embedded default)"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return redact_secrets(str(url))
    if "@" in (parsed.host or ""):  # an unencoded @ in the password: only the last one surely ends it
        return redact_secrets(parsed.render_as_string(hide_password=False))
    return QUERY_PASSWORD.sub(r"\1***", parsed.render_as_string(hide_password=True))


def url_secrets(url: URL) -> tuple[str, ...]:
    """Every secret an engine's URL holds (its password, a `?password=` / `?sslpassword=` value), longest
    first, so that an error text can be cut free of them before it is shown or stored (a shorter secret
    replaced first could leave the rest of a longer one that contains it)."""
    values = [url.password] + [url.query.get(key) for key in ("password", "sslpassword")]
    flat = {v for value in values for v in ((value,) if isinstance(value, str) else value or ()) if v}
    return tuple(sorted(flat, key=len, reverse=True))


def normalise_url(url: str | URL) -> str:
    """The URL with the psycopg2 driver made explicit.

    SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dbmig (and
    dagster-postgres) run on psycopg2. libpq's `postgres://` means the same.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def never_leaves_the_machine(url: str, env: Mapping[str, str]) -> bool:
    """Whether libpq reaches `url` through Unix sockets only: every host it may try is a socket
    directory (`/…`) or an abstract socket (`@…`), and no `hostaddr` or service (whose file may
    name any host) says otherwise. Hosts come from the URL (`host` may list several, comma-separated
    or repeated), else PGHOST; none at all is libpq's default socket."""
    parsed = make_url(url)
    query = parsed.query
    if any(query.get(k) for k in ("hostaddr", "service")) or any(
            env.get(k, "").strip() for k in ("PGHOSTADDR", "PGSERVICE")):
        return False
    hosts = query.get("host") or parsed.host or env.get("PGHOST", "")
    entries = ",".join(hosts) if isinstance(hosts, tuple) else str(hosts)
    return all(not h.strip() or h.strip().startswith(("/", "@")) for h in entries.split(","))


def _not_a_url(name: str, raw: str) -> ConfigError:
    """What is wrong with a value that does not parse as a URL, and the form wanted; never the value
    itself (a DSN or a JDBC URL carries its password elsewhere than a URL would)."""
    if _KEYWORD_DSN.match(raw):
        what = "looks like a libpq key=value string"
    elif raw.lower().startswith("jdbc:"):
        what = "is a JDBC URL (drop the `jdbc:` prefix)"
    elif "://" not in raw:
        what = "has no scheme"
    else:
        what = "cannot be parsed"
    return ConfigError(f"{name} is not a database URL: it {what}; write it as {URL_FORM} "
                       f"(got {redact_secrets(raw)})")


def _parse_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise _not_a_url(name, raw) from None
    if url.get_backend_name() == "postgres":  # libpq's other spelling
        url = url.set(drivername="postgresql" + url.drivername.removeprefix("postgres"))
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"{name} must be a PostgreSQL URL like {URL_FORM}, "
            f"got the {url.get_backend_name()!r} scheme ({mask_url(raw)})"
        )
    if "@" in (url.host or ""):
        # libpq (psql) ends the user info at the first @, a person means the last: refused, not guessed.
        raise ConfigError(
            f"{name} has more than one @ before its host ({mask_url(raw)}): write an @ inside the "
            "password or user name as %40, e.g. postgresql://user:pass%40word@host:5432/dbname"
        )
    if not url.database:
        raise ConfigError(f"{name} names no database ({mask_url(raw)}): add /dbname to the URL")
    if url.drivername not in ("postgresql", "postgresql+psycopg2"):
        raise ConfigError(
            f"{name} uses driver {url.get_driver_name()!r}; dbmig uses psycopg2 "
            "(write postgresql:// or postgresql+psycopg2://)"
        )
    return normalise_url(url)


def _parse_int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """A whole number within [minimum, maximum]: a value beyond any sane use would otherwise pass here and
    fail much later (a bigint overflow after rows were written, a C int overflow in a timeout)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (from {minimum:,} to {maximum:,}), got {value}")
    if value > maximum:
        raise ConfigError(f"{name} must be at most {maximum:,} (from {minimum:,} to {maximum:,}), got {value}")
    return value


def _parse_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
    return raw


def _parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


#: The earliest first partition: Dagster writes a year before 1000 without its leading zeros ("1-01-01"),
#: which its own key format cannot read back, and every year adds 365 keys that each run lists
#: (1900: ~46,000 keys, 0.3 s; 1000: ~375,000, 2.4 s). Rows dated earlier still land in the first.
EARLIEST_PARTITION_START = date(1900, 1, 1)


def _check_partition_start(day: date, what: str) -> date:
    """`day` if a first partition can start there: not before EARLIEST_PARTITION_START and not after today
    (UTC), where no partition would exist yet and every run would find none."""
    today = datetime.now(UTC).date()
    if not EARLIEST_PARTITION_START <= day <= today:
        raise ConfigError(f"{what} must be a day from {EARLIEST_PARTITION_START} to today ({today}, UTC), "
                          f"got {day}")
    return day


def _parse_partition_start(env: Mapping[str, str], name: str, default: date) -> date:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a date like 2020-01-01, got {raw!r}") from None
    return _check_partition_start(day, name)


def _writable_folder(path: Path, name: str) -> Path:
    """`path` if it is a folder this user may write, or one it may create: the embedded server, Dagster
    and the pinned partition start write there later, where a failure would be a traceback mid-command."""
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
    except OSError as exc:  # an ancestor this user may not search
        raise ConfigError(f"{name}={path} cannot be reached: {exc.strerror} ({exc.filename})") from None
    if not existing.is_dir():
        where = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise ConfigError(f"{name}={path} {where}; point {name} at a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is" if existing == path else f"would be created in {existing}, which is"
        raise ConfigError(f"{name}={path} {what} not writable by this user; point {name} at a folder it may write")
    return path


def _parse_file(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if raw and not Path(raw).is_file():
        raise ConfigError(f"{name} points at {raw!r}, which is not a readable file")
    return raw or None


def _parse_side(env: Mapping[str, str], side: str, default_ssl: str) -> SideSettings:
    """URL and TLS of one side. An `sslmode` written in the URL counts as that side's own
    setting: the driver's connect arguments would otherwise silently override it (a URL
    asking for verify-full would get the default `prefer`)."""
    url_var, mode_var, cert_var = f"DBMIG_{side}_URL", f"DBMIG_{side}_SSLMODE", f"DBMIG_{side}_SSLROOTCERT"
    url = _parse_url(env, url_var)
    in_url = make_url(url).query.get("sslmode") if url else None
    if env.get(mode_var, "").strip():
        sslmode = _parse_choice(env, mode_var, default_ssl, SSL_MODES)
        if in_url and in_url != sslmode:
            raise ConfigError(f"{url_var} asks for sslmode={in_url} but {mode_var}={sslmode}: set it in one place")
    elif in_url:
        if in_url not in SSL_MODES:
            raise ConfigError(f"{url_var} has sslmode={in_url!r}; it must be one of {', '.join(SSL_MODES)}")
        sslmode = in_url
    else:
        sslmode = default_ssl
    # `system`: libpq's trust store of the operating system (libpq 16+), for publicly signed certificates.
    rootcert = "system" if env.get(cert_var, "").strip() == "system" else _parse_file(env, cert_var)
    return SideSettings(env_name=url_var, url=url, sslmode=sslmode, sslrootcert=rootcert)


#: Shortest DBMIG_MASK_KEY accepted: the pseudonyms are only as unguessable as the key.
MIN_MASK_KEY_LENGTH = 16


def _parse_mask_key(env: Mapping[str, str], mask_pii: bool) -> bytes | None:
    """The HMAC key of the pseudonyms, read only when masking is on (checked in _check_consistency)."""
    raw = env.get("DBMIG_MASK_KEY", "").strip()
    return raw.encode("utf-8") if mask_pii and raw else None


def _parse_sync_interval(env: Mapping[str, str], name: str, default: int) -> int:
    """Minutes that a cron expression can repeat evenly: a divisor of 60, or whole hours dividing a day."""
    minutes = _parse_int(env, name, default, minimum=1, maximum=1440)
    if 60 % minutes and (minutes % 60 or 1440 % minutes):
        raise ConfigError(f"{name} must divide an hour (1-60) or be whole hours that divide a day, got {minutes}")
    return minutes


def _parse_webhook(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if raw and not re.match(r"https?://[^/\s]+", raw):
        raise ConfigError(f"{name} must be an http:// or https:// URL")  # the URL itself may hold a token
    return raw or None


def drift_strictness_from(env: Mapping[str, str]) -> str:
    """DBMIG_DRIFT_STRICTNESS, validated; the engine's pre-flight reads it without the other settings."""
    return _parse_choice(env, "DBMIG_DRIFT_STRICTNESS", "normal", DRIFT_STRICTNESS)


PARTITION_START_FILE = "partition_start"


def _installation_day(home: Path) -> date:
    """The first day this DBMIG_HOME was used (recorded by `record_partition_start`), else today (UTC).

    The first partition holds everything dated earlier, so by default it is
    the initial full load and every later partition one day of changes.
    """
    recorded = home / PARTITION_START_FILE
    if recorded.is_file():
        try:
            day = date.fromisoformat(recorded.read_text().strip())
        except ValueError:
            raise ConfigError(f"{recorded} should hold a date like 2026-01-31; fix or delete it") from None
        return _check_partition_start(day, f"the date in {recorded} (fix or delete it)")
    return datetime.now(UTC).date()


def record_partition_start(settings: "Settings") -> None:
    """Pin the default partition start so every later process agrees on the partitions."""
    if settings.partition_start_is_default:
        settings.home.mkdir(parents=True, exist_ok=True)
        recorded = settings.home / PARTITION_START_FILE
        if not recorded.exists():
            recorded.write_text(settings.partition_start.isoformat() + "\n")


@dataclass(frozen=True)
class SideSettings:
    """How to reach one database (source or destination)."""

    env_name: str  # the variable its URL comes from, for messages
    url: str | None  # None: the embedded default
    sslmode: str
    sslrootcert: str | None

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class Settings:
    home: Path
    dagster_home: Path
    source: SideSettings
    dest: SideSettings
    dagster_pg_url: str | None
    batch_size: int = 10_000
    checkpoint_every: int = 1
    #: DBMIG_WRITERS: batches of one entity written at once, each on its own destination connection
    writers: int = 2
    #: DBMIG_BATCH_RETRIES: in-batch retries of a technical failure before the step fails
    batch_retries: int = 5
    pool_size: int = 5
    pool_max_overflow: int = 5
    pool_recycle_s: int = 1800
    connect_timeout_s: int = 10
    connect_retries: int = 3
    lookback_s: int = 300
    partition_start: date = date(2020, 1, 1)
    #: True when DBMIG_PARTITION_START was not given: the start is this installation's first day
    partition_start_is_default: bool = False
    delete_guard_share: float = 0.10
    delete_guard_min_rows: int = DEFAULT_DELETE_GUARD_MIN_ROWS
    #: DBMIG_AUTOMATION: schedules and sensors start running instead of stopped
    automation: bool = False
    sync_interval_minutes: int = 15
    #: may carry a token: never shown (repr, logs, alerts)
    alert_webhook_url: str | None = field(default=None, repr=False)
    mask_pii: bool = False
    #: DBMIG_MASK_KEY, the HMAC key of the pseudonyms (set only when mask_pii): never shown
    mask_key: bytes | None = field(default=None, repr=False)
    #: DBMIG_ALLOW_TLS_REQUIRE: production may use sslmode=require (encrypted, server identity unchecked)
    allow_tls_require: bool = False
    environment: str = "development"
    drift_strictness: str = "normal"
    #: DBMIG_STEP_START_METHOD: forkserver (Linux's default) or spawn, for the steps of daemon- and UI-launched runs
    step_start_method: str = "spawn"
    application_name: str = "dbmig"
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        refuse_unknown_variables(env)
        home = _writable_folder(Path(env.get("DBMIG_HOME", "").strip() or ".dbmig").expanduser().absolute(),
                                "DBMIG_HOME")
        dagster_home = _writable_folder(
            Path(env.get("DAGSTER_HOME", "").strip() or home / "dagster_home").expanduser().absolute(), "DAGSTER_HOME")
        default_ssl = _parse_choice(env, "DBMIG_SSLMODE", "prefer", SSL_MODES)
        source = _parse_side(env, "SOURCE", default_ssl)
        dest = _parse_side(env, "DEST", default_ssl)
        mask_pii = _parse_bool(env, "DBMIG_MASK_PII", False)
        share_pct = _parse_int(env, "DBMIG_DELETE_GUARD_PERCENT", 10, minimum=0, maximum=100)
        settings = cls(
            home=home,
            dagster_home=dagster_home,
            source=source,
            dest=dest,
            dagster_pg_url=_parse_url(env, "DAGSTER_PG_URL"),
            batch_size=_parse_int(env, "DBMIG_BATCH_SIZE", 10_000, minimum=1, maximum=1_000_000),
            checkpoint_every=_parse_int(env, "DBMIG_CHECKPOINT_EVERY", 1, minimum=1, maximum=1_000_000_000),
            writers=_parse_int(env, "DBMIG_WRITERS", 2, minimum=1, maximum=32),
            batch_retries=_parse_int(env, "DBMIG_BATCH_RETRIES", 5, minimum=0, maximum=20),
            pool_size=_parse_int(env, "DBMIG_POOL_SIZE", 5, minimum=1, maximum=100),
            pool_max_overflow=_parse_int(env, "DBMIG_POOL_MAX_OVERFLOW", 5, minimum=0, maximum=100),
            pool_recycle_s=_parse_int(env, "DBMIG_POOL_RECYCLE_SECONDS", 1800, minimum=1,
                                      maximum=86_400),
            connect_timeout_s=_parse_int(env, "DBMIG_CONNECT_TIMEOUT", 10, minimum=1, maximum=3600),
            connect_retries=_parse_int(env, "DBMIG_CONNECT_RETRIES", 3, minimum=0, maximum=20),
            lookback_s=_parse_int(env, "DBMIG_LOOKBACK_SECONDS", 300, minimum=0, maximum=2_592_000),
            partition_start=_parse_partition_start(env, "DBMIG_PARTITION_START", _installation_day(home)),
            partition_start_is_default=not env.get("DBMIG_PARTITION_START", "").strip(),
            delete_guard_share=share_pct / 100,
            delete_guard_min_rows=_parse_int(env, "DBMIG_DELETE_GUARD_MIN_ROWS", DEFAULT_DELETE_GUARD_MIN_ROWS,
                                              minimum=0, maximum=1_000_000_000),
            automation=_parse_bool(env, "DBMIG_AUTOMATION", False),
            sync_interval_minutes=_parse_sync_interval(env, "DBMIG_SYNC_INTERVAL_MINUTES", 15),
            alert_webhook_url=_parse_webhook(env, "DBMIG_ALERT_WEBHOOK_URL"),
            mask_pii=mask_pii,
            mask_key=_parse_mask_key(env, mask_pii),
            allow_tls_require=_parse_bool(env, "DBMIG_ALLOW_TLS_REQUIRE", False),
            environment=_parse_choice(env, "DBMIG_ENV", "development", ENVIRONMENTS),
            drift_strictness=drift_strictness_from(env),
            step_start_method=_parse_choice(env, "DBMIG_STEP_START_METHOD", default_step_start_method(),
                                            STEP_START_METHODS),
            application_name=env.get("DBMIG_APPLICATION_NAME", "").strip() or "dbmig",
            env=env,
        )
        settings._check_consistency()
        return settings

    def _check_consistency(self) -> None:
        if self.step_start_method not in multiprocessing.get_all_start_methods():
            raise ConfigError(f"DBMIG_STEP_START_METHOD={self.step_start_method} is not available on this platform "
                              f"({sys.platform}); use spawn")
        connections = self.pool_size + self.pool_max_overflow
        if self.writers + 3 > connections:  # + the pass's own connection, the read-ahead's and the pass lock's
            raise ConfigError(
                f"DBMIG_WRITERS={self.writers} needs {self.writers + 3} destination connections but the pool "
                f"holds {connections} (DBMIG_POOL_SIZE {self.pool_size} + DBMIG_POOL_MAX_OVERFLOW "
                f"{self.pool_max_overflow}): lower DBMIG_WRITERS or raise the pool")
        if self.is_production:
            for side in (self.source, self.dest):
                if side.url is None:
                    raise ConfigError(
                        f"DBMIG_ENV=production but {side.env_name} is not set: production never uses "
                        "the embedded demo database"
                    )
                self._check_production_tls(side)
            self._check_production_dagster_tls()
            if self.mask_pii:
                raise ConfigError("DBMIG_MASK_PII is for non-production targets; it is refused with DBMIG_ENV=production")
        if self.mask_pii and len(self.mask_key or b"") < MIN_MASK_KEY_LENGTH:
            problem = "is shorter than that" if self.mask_key else "is not set"
            raise ConfigError(
                f"DBMIG_MASK_PII=true needs DBMIG_MASK_KEY, a secret of at least {MIN_MASK_KEY_LENGTH} characters "
                f"(e.g. `openssl rand -hex 32`), and it {problem}: without a secret key anyone could reverse "
                "the pseudonyms by hashing guessed names"
            )

    def _check_production_tls(self, side: SideSettings) -> None:
        self._refuse_weak_tls(f"{side.env_name.removesuffix('_URL')}_SSLMODE=verify-full", side.sslmode,
                              "patient data must travel encrypted")

    def _check_production_dagster_tls(self) -> None:
        """DAGSTER_PG_URL carries the run storage's password and the runs' metadata: a server reached
        over the network gets the same TLS rule as the two sides. libpq reads it from the URL
        (`?sslmode=`) or PGSSLMODE; unset, it is `prefer`. A Unix socket never leaves the machine."""
        if self.dagster_pg_url is None or never_leaves_the_machine(self.dagster_pg_url, self.env):
            return  # the embedded server, or another one on a Unix socket
        sslmode = str(make_url(self.dagster_pg_url).query.get("sslmode") or self.env.get("PGSSLMODE", "").strip()
                      or "prefer")
        self._refuse_weak_tls("DAGSTER_PG_URL with ?sslmode=verify-full&sslrootcert=<the CA file>", sslmode,
                              "the run storage's password and run metadata must travel encrypted")

    def _refuse_weak_tls(self, wanted: str, sslmode: str, why: str) -> None:
        accepted = ("verify-full", "verify-ca", "require") if self.allow_tls_require else ("verify-full",)
        if sslmode in accepted:
            return
        if self.allow_tls_require:
            wanted, escape = f"{wanted} (or, as DBMIG_ALLOW_TLS_REQUIRE=true, verify-ca or require)", ""
        else:
            escape = ". Where the server's certificate cannot be verified, DBMIG_ALLOW_TLS_REQUIRE=true accepts require"
        raise ConfigError(
            f"DBMIG_ENV=production requires {wanted}, got {sslmode!r}: {why} "
            "to a server whose certificate and host name are verified (disable, allow and prefer can fall back to "
            "plain text; require encrypts but cannot tell the real server from an impostor)" + escape
        )
