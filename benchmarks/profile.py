"""Where a full load's time goes, per entity and per SQL statement.

    python -m benchmarks.profile --scale 0.1 [--entities orders] [--cprofile out.prof]

Runs the engine itself (`sync_entity`, no Dagster) on the benchmark's
embedded server into a fresh target, and prints per entity the wall seconds
and, per statement kind and thread (main: the pass's own bookkeeping; writer: the parallel
writes; reader: the read-ahead),
how many times it ran and its total seconds as the client saw them (server
work + transfer). The seeded source is reused when it already holds the scale.
"""
from __future__ import annotations

import argparse
import cProfile
import re
import threading
import time
from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import psycopg2.extensions
from sqlalchemy import create_engine

from benchmarks.measure import ServerCpu
from benchmarks.bench import REPO, SOURCE_DB, TARGET_DB, Bench
from benchmarks.workload import apply_changes, changes_per_table
from dbmig_pipeline.demo.seed import planned_counts
from dbmig_pipeline.engine.partitions import partition_keys, partitions_for
from dbmig_pipeline.engine.sync import DIFFERENTIAL, FULL, RunInfo, sync_entity
from dbmig_pipeline.entities import ENTITIES
from dbmig_pipeline.schema import apply_control_schema, ensure_target_schema

_TIMES: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
_LOCK = threading.Lock()


def _label(query) -> str:
    text = query.decode() if isinstance(query, bytes) else str(query)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"'[^']*'", "?", text)
    return text[:90]


def _record(query, seconds: float) -> None:
    name = threading.current_thread().name
    thread = "main" if threading.current_thread() is threading.main_thread() else (
        "writer" if name.startswith("dbmig-write") else "reader")
    with _LOCK:
        slot = _TIMES[(thread, _label(query))]
        slot[0] += 1
        slot[1] += seconds


class TimingCursor(psycopg2.extensions.cursor):
    def execute(self, query, vars=None):
        started = time.perf_counter()
        try:
            return super().execute(query, vars)
        finally:
            _record(self.query or query, time.perf_counter() - started)

    def copy_expert(self, sql, file, size=8192):
        started = time.perf_counter()
        try:
            return super().copy_expert(sql, file, size)
        finally:
            _record(sql.as_string(self) if hasattr(sql, "as_string") else sql, time.perf_counter() - started)


def _engine(url: str):
    url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    return create_engine(url, connect_args={"cursor_factory": TimingCursor,
                                            "options": "-c timezone=UTC"}, pool_size=4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--home", type=Path, default=REPO / ".dbmig-prof")
    parser.add_argument("--entities", help="Comma-separated entities to print (all are loaded: parents first).")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=RunInfo.writers, help="RunInfo.writers (DBMIG_WRITERS).")
    parser.add_argument("--cprofile", type=Path, help="Also write a cProfile of the whole load here.")
    parser.add_argument("--top", type=int, default=12, help="Statements shown per entity.")
    parser.add_argument("--changes", type=int, default=0,
                        help="After the full load, change this many source rows and profile the differential sync.")
    args = parser.parse_args(argv)

    bench = Bench(args.home)
    expected = sum(planned_counts(args.scale).values())
    have = _source_rows(bench)
    if abs(have - expected) > expected * 0.01:
        print(f"seeding scale {args.scale} …", flush=True)
        bench.seed(args.scale)
    bench.reset_target()
    source, dest = _engine(bench.url(SOURCE_DB)), _engine(bench.url(TARGET_DB))
    ensure_target_schema(dest)
    apply_control_schema(dest)
    keys = partition_keys(date.today())
    partitions = partitions_for(keys, keys)
    run = RunInfo(run_id=None, operator="profile", mode=FULL, batch_size=args.batch_size, lookback=timedelta(0),
                  writers=args.writers)
    shown = set(args.entities.split(",")) if args.entities else {s.name for s in ENTITIES}
    profiler = cProfile.Profile() if args.cprofile else None
    server = ServerCpu(bench.server.pgdata)
    _load_all(source, dest, partitions, keys, run, shown, profiler, args.top, server)
    if args.changes:
        bench.vacuum_analyze(TARGET_DB)
        apply_changes(bench, changes_per_table(bench.source_counts(), args.changes), bump=True, salt="profile")
        print(f"\n--- differential sync after {args.changes:,} changes ---")
        _load_all(source, dest, partitions, keys, replace(run, mode=DIFFERENTIAL), shown, profiler, args.top,
                  server)
    if profiler:
        profiler.dump_stats(args.cprofile)
        print(f"\ncProfile written to {args.cprofile}")


def _load_all(source, dest, partitions, keys, run, shown, profiler, top, server: ServerCpu) -> None:
    total = time.perf_counter()
    for spec in ENTITIES:
        _TIMES.clear()
        started, client_cpu, server_cpu = time.perf_counter(), time.process_time(), server.total() or 0.0
        if profiler:
            profiler.enable()
        stats = sync_entity(source, dest, spec, {s.name: s for s in ENTITIES}, partitions, keys, run)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        if spec.name not in shown:
            continue
        print(f"\n{spec.name}: {stats.read:,} rows in {seconds:.2f} s ({stats.read / seconds:,.0f} rows/s), "
              f"written {stats.written:,}; CPU s: client {time.process_time() - client_cpu:.2f}, "
              f"server {(server.total() or 0.0) - server_cpu:.2f}")
        per_thread = {t: sum(v[1] for (u, _), v in _TIMES.items() if u == t) for t in ("main", "writer", "reader")}
        print("  SQL seconds by thread: " + ", ".join(f"{t} {v:.2f}" for t, v in per_thread.items()))
        rows = sorted(_TIMES.items(), key=lambda kv: -kv[1][1])[:top]
        for (thread, label), (count, seconds) in rows:
            print(f"  {seconds:7.2f} s {count:5d}×  {thread:6s} {label}")
    print(f"\nall entities: {time.perf_counter() - total:.2f} s")


def _source_rows(bench: Bench) -> int:
    """Rows of the seeded source; 0 before the legacy schema exists."""
    try:
        return sum(bench.source_counts().values())
    except Exception:
        return 0


if __name__ == "__main__":
    main()
