"""The benchmark's databases and processes: one embedded server under the benchmark home.

Databases on that server:
- `dbmig_legacy`: the seeded legacy source (the product's embedded default name);
- `dbmig_target`: the product's target, dropped and created afresh before each full load;
- `dagster`: the Dagster instance storage of `dbmig migrate`;
- `bench_plain`: the limits: `scratch` (unlogged copies of the legacy tables) and a fresh `app`;
- `bench_dlt`: dlt's destination.

Children get an environment with every DBMIG_* and DAGSTER_* variable of the
caller removed (the benchmark only ever touches its own embedded server), then
DBMIG_HOME and whatever a measurement sets.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import psycopg2

from benchmarks.measure import BenchError, Sample, ServerCpu, last_json, run_child
from dbmig_pipeline.db import EMBEDDED_DAGSTER_DB, EMBEDDED_DEST_DB, EMBEDDED_SOURCE_DB
from dbmig_pipeline.demo.embedded import EmbeddedServer, ensure_server
from dbmig_pipeline.entities import ENTITIES

SOURCE_DB = EMBEDDED_SOURCE_DB
TARGET_DB = EMBEDDED_DEST_DB
DAGSTER_DB = EMBEDDED_DAGSTER_DB
PLAIN_DB = "bench_plain"
DLT_DB = "bench_dlt"
#: a run slower than this is stuck, not slow (scale 1.0 takes minutes, not hours)
CHILD_TIMEOUT_S = 3 * 3600

REPO = Path(__file__).resolve().parent.parent


def _dbmig_command() -> list[str]:
    script = Path(sys.executable).with_name("dbmig")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dbmig_pipeline"]


class Bench:
    """Handles to the benchmark's embedded server and to the product's command line."""

    def __init__(self, home: Path, *, settings_env: dict[str, str] | None = None):
        self.home = Path(home).expanduser().resolve()
        self.server: EmbeddedServer = ensure_server(self.home)
        self.cpu = ServerCpu(self.server.pgdata)
        #: DBMIG_* settings every product run gets (batch size, look-back)
        self.settings_env = dict(settings_env or {})
        for database in (SOURCE_DB, TARGET_DB, DAGSTER_DB, PLAIN_DB, DLT_DB):
            self.server.ensure_database(database)

    # --- processes ------------------------------------------------------

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))}
        env.update(DBMIG_HOME=str(self.home), PYTHONUNBUFFERED="1")
        env.update(self.settings_env)
        env.update(extra or {})
        return env

    def dbmig(self, *args: str, extra_env: dict[str, str] | None = None, parse_json: bool = True) -> Sample:
        """`dbmig ARGS --json` in a child process, measured; a failed run raises BenchError naming
        the entity that failed and why."""
        command = [*_dbmig_command(), *args, *(["--json"] if parse_json else [])]
        sample = run_child(command, env=self.env(extra_env), cwd=REPO, server=self.cpu, timeout=CHILD_TIMEOUT_S,
                           check=False)
        if sample.returncode != 0:
            failed = []
            try:
                report = last_json(sample.stdout)
                failed = [e for e in report.get("entities", []) if not e.get("ok")]
            except (BenchError, AttributeError):
                pass
            if failed:
                raise BenchError(f"`dbmig {' '.join(args)}` failed: " + "; ".join(
                    f"{e['entity']}: {e.get('error')}" for e in failed))
            tail = "\n".join((sample.stdout + "\n" + sample.stderr).strip().splitlines()[-25:])
            raise BenchError(f"`dbmig {' '.join(args)}` exited {sample.returncode}:\n{tail}")
        if parse_json:
            sample.data = last_json(sample.stdout)
        return sample

    def python(self, *args: str, extra_env: dict[str, str] | None = None, parse_json: bool = True) -> Sample:
        """`python ARGS` in a child process (e.g. the dlt runner), measured."""
        return run_child([sys.executable, *args], env=self.env(extra_env), cwd=REPO, server=self.cpu,
                         timeout=CHILD_TIMEOUT_S, parse_json=parse_json)

    def dagster_env(self) -> dict[str, str]:
        """What `dbmig env` exports (DAGSTER_HOME, the URLs): the environment of Dagster's own processes."""
        exports = {}
        for line in self.dbmig("env", parse_json=False).stdout.splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                exports[name] = shlex.split(value)[0] if value else ""
        return exports

    def warm_up(self) -> None:
        """Create Dagster's storage tables before anything is timed (the first run would pay for them)."""
        self.python("-c", "import dagster; dagster.DagsterInstance.get().get_run_records(limit=1)",
                    extra_env=self.dagster_env(), parse_json=False)

    def daemon_run(self, start_method: str | None = None) -> Sample:
        """`migrate_all` as the daemon's run worker executes it (benchmarks/daemon_run.py), measured;
        `start_method` is the product's `DBMIG_STEP_START_METHOD` (None: its default).

        Its steps are the forkserver's children, not the run worker's: the kernel reports their memory and
        CPU to neither, so the sample keeps only the wall time and the server's CPU."""
        env = self.dagster_env()
        if start_method:
            env["DBMIG_STEP_START_METHOD"] = start_method
        sample = self.python("-m", "benchmarks.daemon_run", extra_env=env)
        sample.peak_rss_kb = sample.client_cpu_s = None
        return sample

    # --- databases ------------------------------------------------------

    def url(self, database: str) -> str:
        return self.server.url(database)

    def connect(self, database: str, *, autocommit: bool = True):
        """A psycopg2 connection; autocommit by default so that no idle transaction holds
        back the product's safe horizon on the source."""
        conn = psycopg2.connect(self.server.dsn(database), connect_timeout=10,
                                options="-c timezone=UTC -c statement_timeout=0")
        conn.autocommit = autocommit
        return conn

    def reset_target(self) -> None:
        """A fresh, empty target database (and so nothing of earlier runs' control schema)."""
        self.server.drop_database(TARGET_DB)
        self.server.ensure_database(TARGET_DB)

    def settle(self) -> None:
        """Write out the dirty pages of what ran before (CHECKPOINT), untimed, so that no measurement pays for
        its predecessor's: a differential leaves ~1 GB of them, and a checkpoint its WAL starts then runs
        into whatever is timed next."""
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("CHECKPOINT")
        finally:
            conn.close()

    def vacuum_analyze(self, database: str) -> None:
        """What autovacuum does within minutes of a bulk load, done now so that it neither runs into
        the next measurement nor leaves that one without statistics. Untimed."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
        finally:
            conn.close()

    def seed(self, scale: float) -> dict[str, int]:
        from dbmig_pipeline.demo.seed import seed_legacy

        return seed_legacy(self.url(SOURCE_DB), scale=scale, force=True)

    def source_counts(self) -> dict[str, int]:
        conn = self.connect(SOURCE_DB)
        try:
            with conn.cursor() as cur:
                counts = {}
                for spec in ENTITIES:
                    cur.execute(f'SELECT count(*) FROM public."{spec.source_table}"')
                    counts[spec.name] = cur.fetchone()[0]
                return counts
        finally:
            conn.close()

    def server_version(self) -> str:
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                version = cur.fetchone()[0]
                cur.execute("SELECT current_setting('shared_buffers'), current_setting('work_mem'), "
                            "current_setting('synchronous_commit')")
                shared, work, sync = cur.fetchone()
            return f"{version} (embedded; shared_buffers {shared}, work_mem {work}, synchronous_commit {sync})"
        finally:
            conn.close()
