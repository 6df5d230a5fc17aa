"""dlt as a point of comparison: its `sql_database` source, incremental on updated_at, merged on id.

What runs (one child process per measurement, so that its peak RSS is its own):
`sql_database(engine, schema="public", table_names=<the six legacy tables>,
backend="pyarrow")`, every table hinted with
`incremental=dlt.sources.incremental("updated_at", on_cursor_value_missing="include")`
(system_messages has NULL timestamps, which dlt refuses by default),
`primary_key="id"`, `write_disposition="merge"`, into dlt's `postgres`
destination (database `bench_dlt`, dataset `legacy`) with
`loader_file_format="csv"` (arrow tables reach PostgreSQL by COPY; dlt's
fastest path there). Rows dated in the future (a handful of seed edge rows)
are left out by a query adapter: dlt's cursor is the maximum `updated_at` it
has seen, so a single future row would hide every later change from it (dbmig
caps its cursor at the source's clock instead). dlt moves the legacy rows as
they are: no mapping, no validation, no hashes, no parents.

"full": the first run into an empty destination (database and pipeline state
reset before each repeat, untimed); "incremental": the next run after a
change, from the state the previous run left.

dlt is installed into the running venv on demand (`pip install
"dlt[postgres,sql-database]" pyarrow`), never into the project's dependencies.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("dlt[postgres,sql-database]", "pyarrow")
PIPELINE = "dbmig_bench"
DATASET = "legacy"


def installed_version() -> str | None:
    try:
        metadata.version("pyarrow")
        return metadata.version("dlt")
    except metadata.PackageNotFoundError:
        return None


def install() -> str | None:
    """pip-install dlt and pyarrow into this interpreter's environment; returns dlt's version."""
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *PACKAGES],
                            check=False, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"dlt could not be installed: {result.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return installed_version()


def pipelines_dir(home: Path) -> Path:
    return Path(home) / "dlt_pipelines"


def reset(bench) -> None:
    """An empty destination database and no pipeline state. Untimed."""
    from benchmarks.bench import DLT_DB

    shutil.rmtree(pipelines_dir(bench.home), ignore_errors=True)
    bench.server.drop_database(DLT_DB)
    bench.server.ensure_database(DLT_DB)


def run_args(bench) -> list[str]:
    """Arguments of `python -m benchmarks.dlt_compare` for one run against the benchmark's databases."""
    from benchmarks.bench import DLT_DB, SOURCE_DB

    return ["-m", "benchmarks.dlt_compare", "--source-url", bench.url(SOURCE_DB),
            "--dest-dsn", _dest_url(bench.server, DLT_DB), "--pipelines-dir", str(pipelines_dir(bench.home))]


def _dest_url(server, database: str) -> str:
    # libpq URI: the Unix socket folder travels as the host parameter; dlt insists on a password
    # and the embedded server (trust over its socket) ignores it
    return f"postgresql://{server.user}:unused@localhost:{server.port}/{database}?host={server.socket_dir}"


# --- the child ----------------------------------------------------------------

def _run(source_url: str, dest_dsn: str, folder: str, tables: list[str]) -> dict:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt
    import sqlalchemy as sa
    from dlt.sources.sql_database import sql_database

    def not_in_future(query, table):
        if "updated_at" not in table.c:
            return query
        return query.where(sa.or_(table.c.updated_at.is_(None), table.c.updated_at <= sa.func.now()))

    engine = sa.create_engine(source_url)
    source = sql_database(engine, schema="public", table_names=tables, backend="pyarrow",
                          query_adapter_callback=not_in_future)
    for name in tables:
        source.resources[name].apply_hints(
            incremental=dlt.sources.incremental("updated_at", on_cursor_value_missing="include"),
            primary_key="id", write_disposition="merge",
        )
    pipeline = dlt.pipeline(pipeline_name=PIPELINE, pipelines_dir=folder,
                            destination=dlt.destinations.postgres(credentials=dest_dsn), dataset_name=DATASET)
    pipeline.run(source, loader_file_format="csv")
    counts = pipeline.last_trace.last_normalize_info.row_counts
    engine.dispose()
    return {"rows": {t: int(counts.get(t, 0)) for t in tables}}


def main(argv: list[str] | None = None) -> None:
    from dbmig_pipeline.entities import ENTITIES

    parser = argparse.ArgumentParser(description="One dlt run of the legacy tables (used by benchmarks.run).")
    parser.add_argument("--source-url", required=True)
    parser.add_argument("--dest-dsn", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(_run(args.source_url, args.dest_dsn, args.pipelines_dir,
                          [spec.source_table for spec in ENTITIES])))


if __name__ == "__main__":
    main()
