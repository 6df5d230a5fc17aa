"""`python -m benchmarks.ab [--scale 1.0] [--rounds 5] NAME=TREE NAME=TREE …`

Interleaved A/B of the differential sync between versions of the product:
each TREE is a checkout (e.g. `git worktree add /tmp/base HEAD~1`) whose
`dbmig_pipeline` the timed `dbmig migrate` imports (PYTHONPATH). A change
to the engine is kept only if it beats the noise of the machine, and the
harness's three repeats cannot tell 5 % apart: the tenth round measured a
1.61 × that was checkpoint noise (BENCHMARKS.md).

Every round, in alternating order, each version syncs its own fresh
changes (the same number of random rows, `updated_at` bumped) after an
untimed `CHECKPOINT`; then the plain delta (limit (c)) upserts changes of
its own, and an untimed sync of the first version catches those up, so
that every timed run moves exactly its own changes. The first time it
runs (or with `--seed`) it seeds the benchmark home at `--scale` and loads
the dbmig and the plain targets in full, untimed.

It only writes to the benchmark's embedded server (as `benchmarks.run`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import limits
from benchmarks.bench import PLAIN_DB, REPO, SOURCE_DB, TARGET_DB, Bench
from benchmarks.measure import BenchError, Sample, run_inprocess
from benchmarks.workload import apply_changes, changes_per_table
from benchmarks.run import CHANGES_AT_SCALE_1, say

PLAIN = "plain delta"


@dataclass
class Version:
    name: str
    tree: Path
    samples: list[Sample] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.tree)}


def _version(text: str) -> Version:
    name, sep, tree = text.partition("=")
    if not sep or not name or not tree:
        raise argparse.ArgumentTypeError(f"expected NAME=TREE (a checkout of dbmig), got {text!r}")
    path = Path(tree).expanduser().resolve()
    if not (path / "dbmig_pipeline" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{name}: {path} is not a checkout of dbmig (no dbmig_pipeline/ in it)")
    return Version(name, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[1])
    parser.add_argument("versions", nargs="+", type=_version, metavar="NAME=TREE",
                        help="Versions to compare: a name and the checkout its dbmig_pipeline is imported from.")
    parser.add_argument("--scale", type=float, default=1.0, help="Scale of the data (1.0 ≈ 3.5 M rows).")
    parser.add_argument("--rounds", type=int, default=5, help="Timed runs per version (default 5).")
    parser.add_argument("--changes", type=int, help=f"Changed rows per run (default {CHANGES_AT_SCALE_1:,} × scale).")
    parser.add_argument("--seed", action="store_true", help="Seed and load in full even if the home holds data.")
    parser.add_argument("--home", type=Path, default=REPO / ".dbmig-bench", help="Benchmark DBMIG_HOME (default ./.dbmig-bench).")
    args = parser.parse_args(argv)
    names = [v.name for v in args.versions]
    if len(set(names)) != len(names) or PLAIN in names:
        parser.error(f"version names must differ from each other and from {PLAIN!r}: {names}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.changes is None:
        args.changes = max(1, round(CHANGES_AT_SCALE_1 * args.scale))
    return args


def _legacy_schema_exists(bench: Bench) -> bool:
    conn = bench.connect(SOURCE_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.orders') IS NOT NULL")
            return cur.fetchone()[0]
    finally:
        conn.close()


def _rows(bench: Bench, database: str) -> int | None:
    """Rows of app.orders in `database`, None when it has no such table (never loaded)."""
    conn = bench.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('app.orders') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SELECT count(*) FROM app.orders")
            return cur.fetchone()[0]
    finally:
        conn.close()


def prepare(bench: Bench, args: argparse.Namespace, first: Version) -> dict[str, int]:
    """Seeded source and both targets loaded in full (untimed), unless the home holds them already."""
    counts = bench.source_counts() if _legacy_schema_exists(bench) else {}
    seeded = args.seed or not sum(counts.values())
    if seeded:
        say(f"seeding scale {args.scale:g}")
        counts = bench.seed(args.scale)
    if seeded or not _rows(bench, TARGET_DB):
        say("full load of the dbmig target (untimed)")
        bench.reset_target()
        bench.dbmig("migrate", extra_env=first.env)
        bench.vacuum_analyze(TARGET_DB)
    if seeded or not _rows(bench, PLAIN_DB):
        say("full load of the plain target (untimed)")
        limits.reset_plain_target(bench)
        limits.plain_load(bench)
        bench.vacuum_analyze(PLAIN_DB)
    return counts


def _engine_seconds(sample: Sample) -> float:
    return sum(e["metadata"].get("duration_seconds", 0) for e in sample.data["entities"])


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _cpu(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "–"


def render(versions: list[Version], plain: list[Sample], changes: int) -> str:
    base = statistics.median(s.seconds for s in versions[0].samples)
    plain_median = statistics.median(s.seconds for s in plain)
    lines = [
        f"`dbmig migrate` after {changes:,} changes, {len(plain)} interleaved rounds; seconds: median (min–max)",
        "",
        f"| version | seconds | engine alone | CPU s: client / server | ÷ {versions[0].name} | ÷ {PLAIN} |",
        "|---|---|---|---|---:|---:|",
    ]
    for v in versions:
        seconds = [s.seconds for s in v.samples]
        lines.append(
            f"| {v.name} | {_spread(seconds)} | {_spread([_engine_seconds(s) for s in v.samples])} | "
            f"{_cpu([s.client_cpu_s for s in v.samples])} / {_cpu([s.server_cpu_s for s in v.samples])} | "
            f"{statistics.median(seconds) / base:.3f} | {statistics.median(seconds) / plain_median:.2f} |")
    lines.append(f"| {PLAIN} | {_spread([s.seconds for s in plain])} | | – / {_cpu([s.server_cpu_s for s in plain])} | "
                 f"{plain_median / base:.3f} | 1.00 |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    versions: list[Version] = args.versions
    bench = Bench(args.home, settings_env={"DBMIG_LOOKBACK_SECONDS": "0"})
    try:
        bench.warm_up()
        counts = prepare(bench, args, versions[0])
        plan = changes_per_table(counts, args.changes)
        plain: list[Sample] = []
        for i in range(args.rounds):
            for v in (versions if i % 2 == 0 else versions[::-1]):
                apply_changes(bench, plan, bump=True, salt=f"ab-{i}-{v.name}-{time.time_ns()}")
                bench.settle()
                v.samples.append(bench.dbmig("migrate", extra_env=v.env))
                say(f"round {i + 1}/{args.rounds}: {v.name} {v.samples[-1].seconds:.2f} s "
                    f"(engine {_engine_seconds(v.samples[-1]):.2f} s)")
            changes = apply_changes(bench, plan, bump=True, salt=f"ab-{i}-plain-{time.time_ns()}")
            bench.settle()
            plain.append(run_inprocess(
                lambda since=changes.since, until=changes.until: limits.plain_delta(bench, since, until),
                server=bench.cpu))
            say(f"round {i + 1}/{args.rounds}: {PLAIN} {plain[-1].seconds:.2f} s")
            bench.dbmig("migrate", extra_env=versions[0].env)  # untimed: the plain round's changes
    except BenchError as exc:
        print(f"benchmarks.ab: {exc}", file=sys.stderr)
        return 1
    print(render(versions, plain, sum(plan.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
