"""`python -m benchmarks.run --scale 1.0 [--repeat 3] [--scales 0.1,1.0] [--write]`

Seeds the embedded legacy database under the benchmark home, measures the
product through its command line (each `dbmig` a child process: wall time,
its peak RSS, its CPU and the server's), the limits of the hardware and dlt,
and prints one table; `--write` regenerates BENCHMARKS.md (keeping the
lead's section at its end). `--quick` (one repeat, no dlt install) is the
smoke test CI runs at `--scale 0.01`.

It only ever writes to its own embedded server (every DBMIG_*/DAGSTER_*
variable of the caller is ignored): the source is re-seeded and the
benchmark's target databases are dropped and re-created.
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

from benchmarks import dlt_compare, limits
from benchmarks.bench import REPO, TARGET_DB, Bench
from benchmarks.measure import BenchError, Sample, Spread, run_inprocess
from benchmarks.report import (
    MemoryRow,
    Row,
    load_average,
    machine,
    render,
    write_benchmarks_md,
)
from benchmarks.workload import apply_changes, changes_per_table
from dbmig_pipeline.entities import ENTITY_NAMES
from dbmig_pipeline.settings import Settings, default_step_start_method

#: Changed rows at scale 1.0 (scaled with --scale).
CHANGES_AT_SCALE_1 = 100_000
NO_DEFERRED_CHECKPOINT = "n/a (engine has no deferred-checkpoint mode yet)"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _parse_scales(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        scales = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales takes numbers separated by commas, got {text!r}") from None
    if any(s <= 0 for s in scales):
        raise argparse.ArgumentTypeError("scales must be positive")
    return scales


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, help="Scale of the main run (1.0 ≈ 3.5 M rows). "
                        "Default: the largest of --scales, else 1.0.")
    parser.add_argument("--scales", help="Also measure peak memory of the full load at these scales, e.g. 0.1,1.0.")
    parser.add_argument("--repeat", type=int, default=None, help="Runs per figure (median, min, max). Default 3; 1 with --quick.")
    parser.add_argument("--quick", action="store_true", help="Smoke test: one repeat; dlt only if already installed.")
    parser.add_argument("--home", type=Path, default=REPO / ".dbmig-bench", help="Benchmark DBMIG_HOME (default ./.dbmig-bench).")
    parser.add_argument("--changes", type=int, help=f"Changed source rows (default {CHANGES_AT_SCALE_1:,} × scale).")
    parser.add_argument("--lookback", type=int, default=0,
                        help="DBMIG_LOOKBACK_SECONDS of the measured runs (default 0: each differential repeat "
                             "sees only its own changes; the product's default is 300).")
    parser.add_argument("--batch-size", type=int, help="DBMIG_BATCH_SIZE of the measured runs (default: the product's).")
    parser.add_argument("--no-dlt", action="store_true", help="Skip the dlt comparison.")
    parser.add_argument("--write", action="store_true", help="Regenerate BENCHMARKS.md (the lead's section is kept).")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="File --write regenerates.")
    args = parser.parse_args(argv)
    try:
        args.scales = _parse_scales(args.scales)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.scale is None:
        args.scale = max(args.scales) if args.scales else 1.0
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.changes is None:
        args.changes = max(1, round(CHANGES_AT_SCALE_1 * args.scale))
    return args


class Suite:
    """One benchmark run: the measurements in order, each appending its Row."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        settings_env = {"DBMIG_LOOKBACK_SECONDS": str(args.lookback)}
        if args.batch_size:
            settings_env["DBMIG_BATCH_SIZE"] = str(args.batch_size)
        self.bench = Bench(args.home, settings_env=settings_env)
        self.rows: list[Row] = []
        self.memory: list[MemoryRow] = []
        self.notes: list[str] = []
        self.todos: list[str] = []
        self.entity_durations: dict[str, list[float]] = {e: [] for e in ENTITY_NAMES}
        self.counts: dict[str, int] = {}
        self.dlt_version: str | None = None
        #: full loads with one checkpoint at the end (measured beside the default ones)
        self.checkpoint_at_end: list[Sample] = []
        #: full loads with DBMIG_WRITERS=1 (measured beside the default ones)
        self.one_writer: list[Sample] = []

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    # --- helpers ----------------------------------------------------------

    def _repeat(self, label: str, measure, *, before=None) -> list[Sample]:
        samples = []
        for i in range(self.args.repeat):
            if before:
                before(i)
            self.bench.settle()
            sample = measure(i)
            say(f"{label} {i + 1}/{self.args.repeat}: {sample.seconds:.2f} s"
                + (f", peak RSS {sample.peak_rss_kb / 1024:.0f} MiB" if sample.peak_rss_kb else ""))
            samples.append(sample)
        return samples

    def _migrate(self, extra_env: dict[str, str] | None = None) -> Sample:
        return self.bench.dbmig("migrate", extra_env=extra_env)

    def _full_load(self, label: str) -> list[Sample]:
        return self._repeat(label, lambda i: self._migrate(), before=lambda i: self.bench.reset_target())

    # --- sections -----------------------------------------------------------

    def seed(self, scale: float) -> None:
        started = time.perf_counter()
        self.counts = self.bench.seed(scale)
        say(f"seeded scale {scale:g}: {sum(self.counts.values()):,} rows in {time.perf_counter() - started:.1f} s")

    def memory_at(self, scale: float) -> None:
        """Peak RSS of a full load and of a sync with nothing to do, at another scale."""
        self.seed(scale)
        self.bench.warm_up()
        full = self._full_load(label=f"scale {scale:g}: full load")
        self.bench.vacuum_analyze(TARGET_DB)
        idle = self._repeat(f"scale {scale:g}: sync, nothing to do", lambda i: self._migrate())
        self.memory.append(MemoryRow(scale, self.total_rows, full, idle))

    def full_load(self) -> None:
        """The full load; with the engine's checkpoint knob, interleaved with the same load checkpointed
        once at the end (alternating which goes first), so that drift in the machine's load hits both."""
        variants: list[tuple[str, dict[str, str] | None]] = [("full load", None)]
        if self.has_checkpoint_knob:
            variants.append(("full load, one checkpoint", {"DBMIG_CHECKPOINT_EVERY": str(10 ** 9)}))
        if self.has_writers_knob:
            variants.append(("full load, one writer", {"DBMIG_WRITERS": "1"}))
        measured: dict[str, list[Sample]] = {label: [] for label, _ in variants}
        for i in range(self.args.repeat):
            for label, extra_env in (variants if i % 2 == 0 else variants[::-1]):
                self.bench.reset_target()
                self.bench.settle()
                sample = self._migrate(extra_env)
                say(f"{label} {i + 1}/{self.args.repeat}: {sample.seconds:.2f} s, "
                    f"peak RSS {sample.peak_rss_kb / 1024:.0f} MiB")
                measured[label].append(sample)
        self.bench.vacuum_analyze(TARGET_DB)
        samples = measured["full load"]
        self.checkpoint_at_end = measured.get("full load, one checkpoint", [])
        self.one_writer = measured.get("full load, one writer", [])
        for sample in samples:
            for entity in sample.data["entities"]:
                self.entity_durations[entity["entity"]].append(float(entity["metadata"].get("duration_seconds", 0)))
        written = sum(e["metadata"].get("rows_written", 0) for e in samples[-1].data["entities"])
        engine = Spread.of([sum(e["metadata"].get("duration_seconds", 0) for e in s.data["entities"])
                            for s in samples])
        self.add(Row("full", "Full initial load (`dbmig migrate`, empty target)", samples, rows=self.total_rows,
                     note=f"written {written:,}; engine alone {engine.median:.1f} s (the rest: process "
                          "start-up, Dagster run bookkeeping)"))

    def idle_sync(self) -> None:
        samples = self._repeat("sync, nothing to do", lambda i: self._migrate())
        self.add(Row("idle", "Differential sync with nothing to do (`dbmig migrate`)", samples,
                     note="the floor of every sync: start-up, pre-flight, Dagster run"))

    def daemon_sync(self) -> None:
        """A sync as the daemon runs it; where steps fork from a forkserver by default (Linux), interleaved
        with the same run whose steps spawn fresh interpreters (`DBMIG_STEP_START_METHOD=spawn`, Dagster's
        own default), so that the table shows what the preloaded forkserver buys."""
        forked = default_step_start_method() == "forkserver"
        variants = [None, "spawn"] if forked else [None]
        measured: dict[str | None, list[Sample]] = {v: [] for v in variants}
        for i in range(self.args.repeat):
            for method in (variants if i % 2 == 0 else variants[::-1]):
                self.bench.settle()
                sample = self.bench.daemon_run(method)
                say(f"sync, nothing to do, as the daemon runs it, steps by {method or 'default'} "
                    f"{i + 1}/{self.args.repeat}: {sample.seconds:.2f} s")
                measured[method].append(sample)
        samples = measured[None]
        steps = samples[-1].data["steps"]
        how = ("each forked from a forkserver that preloaded the code location" if forked
               else "each a fresh interpreter (spawn)")
        self.add(Row("idle_daemon", "Differential sync with nothing to do, as the daemon runs it "
                     "(`migrate_all`, multiprocess executor)", samples,
                     note=f"{steps} steps, {how}; the schedule's, sensors' and UI's runs (without the queue)"))
        label = "Steps spawned instead of forked (`DBMIG_STEP_START_METHOD=spawn`): the same run"
        if "spawn" not in measured:
            self.add(Row("idle_daemon_spawn", label, missing="n/a: steps spawn on this platform by default"))
            return
        median = {m: Spread.of([s.seconds for s in runs]).median for m, runs in measured.items()}
        ratio = median[None] / median["spawn"]
        self.add(Row("idle_daemon_spawn", label, measured["spawn"], compare_to="idle_daemon",
                     note=f"Dagster's default; forked steps (dbmig's default on Linux, decision 0011) take "
                          f"{ratio:.2f}× the time of spawned ones"))

    def baseline(self, key: str, label: str) -> None:
        samples = self._repeat(label, lambda i: self.bench.dbmig("baseline"))
        found = sum(r["changed"] + r["new"] + r["deleted"] for r in samples[-1].data)
        self.add(Row(key, label + " (`dbmig baseline`)", samples, rows=self.total_rows,
                     note=f"differences found: {found:,}"))

    def limits_before_changes(self) -> None:
        bench = self.bench
        samples = self._repeat("limit (a) raw COPY pipe", lambda i: run_inprocess(lambda: limits.raw_copy(bench),
                                                                                  server=bench.cpu),
                               before=lambda i: limits.prepare_scratch(bench))
        self.add(Row("raw_copy", "Limit (a): raw COPY pipe, all six tables", samples, rows=samples[-1].data,
                     compare_to="full"))
        samples = self._repeat("limit (b) plain set-based load",
                               lambda i: run_inprocess(lambda: limits.plain_load(bench), server=bench.cpu),
                               before=lambda i: limits.reset_plain_target(bench))
        bench.vacuum_analyze(limits.PLAIN_DB)
        self.add(Row("plain_load", "Limit (b): plain set-based load (COPY + one upsert per table)", samples,
                     rows=self.total_rows, compare_to="full", note=f"written {samples[-1].data:,}"))
        samples = self._repeat("limit (d) range checksums",
                               lambda i: run_inprocess(lambda: limits.range_checksums(bench), server=bench.cpu))
        self.add(Row("checksums", "Limit (d): range checksums over the source, one pass", samples,
                     rows=samples[-1].data, compare_to="baseline_same"))

    def dlt_setup(self) -> None:
        if self.args.no_dlt:
            return
        self.dlt_version = dlt_compare.installed_version()
        if self.dlt_version is None and not self.args.quick:
            say("installing dlt[postgres,sql-database] and pyarrow into this venv (not the project's dependencies)")
            self.dlt_version = dlt_compare.install()

    def _dlt_missing(self) -> str | None:
        if self.args.no_dlt:
            return "skipped (--no-dlt)"
        if self.dlt_version is None:
            return "skipped (--quick and dlt is not installed)" if self.args.quick else "skipped (dlt could not be installed)"
        return None

    def dlt_full(self) -> None:
        label = "dlt full load (sql_database → postgres, merge)"
        missing = self._dlt_missing()
        if missing:
            self.add(Row("dlt_full", label, missing=missing))
            return
        try:
            samples = self._repeat("dlt full load", lambda i: self.bench.python(*dlt_compare.run_args(self.bench)),
                                   before=lambda i: dlt_compare.reset(self.bench))
        except BenchError as exc:
            self.add(Row("dlt_full", label, missing=f"failed: {str(exc).splitlines()[-1][:200]}"))
            self.dlt_version = None
            return
        loaded = sum(samples[-1].data["rows"].values())
        self.add(Row("dlt_full", label, samples, rows=loaded, compare_to="full",
                     note=f"dlt {self.dlt_version}; loaded {loaded:,}"))

    def differential(self) -> None:
        plan = changes_per_table(self.counts, self.args.changes)
        say(f"differential: {sum(plan.values()):,} changed rows per repeat: "
            + ", ".join(f"{k} {v:,}" for k, v in plan.items()))
        diff, sync, delta, dlt_inc = [], [], [], []
        dlt_missing = self._dlt_missing()
        dlt_failed = None
        for i in range(self.args.repeat):
            changes = apply_changes(self.bench, plan, bump=True, salt=f"delta-{i}-{time.time_ns()}")
            self.bench.settle()
            diff.append(self.bench.dbmig("diff"))
            self.bench.settle()
            sync.append(self._migrate())
            self.bench.settle()
            delta.append(run_inprocess(
                lambda since=changes.since, until=changes.until: limits.plain_delta(self.bench, since, until),
                server=self.bench.cpu))
            if not dlt_missing and not dlt_failed:
                try:
                    self.bench.settle()
                    dlt_inc.append(self.bench.python(*dlt_compare.run_args(self.bench)))
                except BenchError as exc:
                    dlt_failed = f"failed: {str(exc).splitlines()[-1][:200]}"
            say(f"differential {i + 1}/{self.args.repeat}: diff {diff[-1].seconds:.2f} s, migrate "
                f"{sync[-1].seconds:.2f} s, plain delta {delta[-1].seconds:.2f} s"
                + (f", dlt {dlt_inc[-1].seconds:.2f} s" if dlt_inc and len(dlt_inc) == i + 1 else ""))
        n = sum(plan.values())
        to_move = sum(r["new"] + r["changed"] for r in diff[-1].data)
        scanned = sum(r["rows_scanned"] for r in diff[-1].data)
        written = sum(e["metadata"].get("rows_written", 0) for e in sync[-1].data["entities"])
        engine = Spread.of([sum(e["metadata"].get("duration_seconds", 0) for e in s.data["entities"]) for s in sync])
        self.add(Row("diff", f"Differential detection alone after {n:,} changes (`dbmig diff`)", diff, rows=n,
                     note=f"scanned {scanned:,}, to move {to_move:,}"))
        self.add(Row("sync", f"Differential detection + load after {n:,} changes (`dbmig migrate`)", sync, rows=n,
                     note=f"written {written:,}; engine alone {engine.median:.2f} s (the rest: the floor of every "
                          "sync, see the row above)"))
        self.add(Row("plain_delta", "Limit (c): plain delta (keyset read + COPY + upsert)", delta, rows=n,
                     compare_to="sync", note=f"written {delta[-1].data:,}"))
        label = "dlt incremental after the same changes"
        if dlt_missing or dlt_failed:
            self.add(Row("dlt_incremental", label, missing=dlt_missing or dlt_failed))
        else:
            loaded = sum(dlt_inc[-1].data["rows"].values())
            self.add(Row("dlt_incremental", label, dlt_inc, rows=n, compare_to="sync",
                         note=f"loaded {loaded:,} (NULL-cursor rows are re-read every time)"))

    def silent_baseline(self) -> None:
        plan = changes_per_table(self.counts, self.args.changes)
        apply_changes(self.bench, plan, bump=False, salt=f"silent-{time.time_ns()}")
        self.baseline("baseline_silent", f"Baseline after {sum(plan.values()):,} silent changes")

    @property
    def has_checkpoint_knob(self) -> bool:
        return "checkpoint_every" in {f.name for f in dataclasses.fields(Settings)}

    @property
    def has_writers_knob(self) -> bool:
        return "writers" in {f.name for f in dataclasses.fields(Settings)}

    def parallel_writers(self) -> None:
        """The default (parallel writers) against one writer, both measured in `full_load`."""
        if not self.one_writer:
            return
        full = next(r for r in self.rows if r.key == "full")
        default = next(f.default for f in dataclasses.fields(Settings) if f.name == "writers")
        one = Spread.of([s.seconds for s in self.one_writer])
        self.add(Row("one_writer", "One writer (`DBMIG_WRITERS=1`): the gain of parallel writes on these cores",
                     self.one_writer, rows=self.total_rows, compare_to="full",
                     note=f"{default} writers (the default) take {full.seconds().median / one.median:.2f}× "
                          "the time of one"))

    def checkpoints(self) -> None:
        """Per-batch checkpoints against one at the end (both measured in `full_load`)."""
        full = next(r for r in self.rows if r.key == "full")
        self.add(Row("checkpoint_default", "Checkpoint every batch (the default; = the full load above)",
                     full.samples, rows=full.rows))
        label = "One checkpoint at the end (`DBMIG_CHECKPOINT_EVERY=1000000000`)"
        if not self.checkpoint_at_end:
            self.add(Row("checkpoint_end", label, missing=NO_DEFERRED_CHECKPOINT))
            self.todos.append(
                "Checkpoint overhead: n/a, the engine has no deferred-checkpoint mode. With "
                "`DBMIG_CHECKPOINT_EVERY` (a `checkpoint_every` setting) the harness measures it unchanged.")
            return
        samples = self.checkpoint_at_end
        per_batch, at_end = full.seconds(), Spread.of([s.seconds for s in samples])
        overhead = (per_batch.median / at_end.median - 1) * 100 if at_end.median else 0.0
        note = f"per-batch checkpoints: {overhead:+.1f} % of the load time"
        if len(samples) > 1 and per_batch.low <= at_end.high and at_end.low <= per_batch.high:
            note += " (within the noise: the min–max ranges overlap)"
        self.add(Row("checkpoint_end", label, samples, rows=self.total_rows, compare_to="checkpoint_default",
                     note=note))

    # --- the whole run --------------------------------------------------------

    def run(self) -> str:
        args = self.args
        load_before = load_average()
        for scale in args.scales:
            if scale != args.scale:
                self.memory_at(scale)
        self.seed(args.scale)
        self.bench.warm_up()
        self.dlt_setup()
        self.full_load()
        self.idle_sync()
        self.daemon_sync()
        self.baseline("baseline_same", "Baseline with no changes")
        self.limits_before_changes()
        self.dlt_full()
        self.differential()
        self.silent_baseline()
        self.checkpoints()
        self.parallel_writers()
        if args.scales and args.scale in args.scales:
            full = next(r for r in self.rows if r.key == "full")
            idle = next(r for r in self.rows if r.key == "idle")
            self.memory.append(MemoryRow(args.scale, self.total_rows, full.samples, idle.samples))
            self.memory.sort(key=lambda m: m.scale)
        return self._render(load_before)

    def _order(self) -> list[Row]:
        order = ["full", "idle", "idle_daemon", "idle_daemon_spawn", "diff", "sync", "baseline_same", "baseline_silent", "checkpoint_default",
                 "checkpoint_end", "raw_copy", "plain_load", "plain_delta", "checksums", "dlt_full", "dlt_incremental"]
        return sorted(self.rows, key=lambda r: order.index(r.key) if r.key in order else len(order))

    def _render(self, load_before: str) -> str:
        args = self.args
        command = "python -m benchmarks.run " + " ".join(
            shlex.quote(a) for a in sys.argv[1:] if a not in ("--write",))
        notes = [
            f"Every `dbmig` run is the product as users run it: a child process on the embedded databases of "
            f"`{args.home.name}/` with `DBMIG_LOOKBACK_SECONDS={args.lookback}`"
            + (f", `DBMIG_BATCH_SIZE={args.batch_size}`" if args.batch_size else
               f" and the default batch size ({Settings.batch_size:,})") + ".",
            ("Source and target are databases of ONE embedded PostgreSQL server (the product's default), on the "
            "same cores as the client: client and server CPU compete."),
            ("Every timed run starts after an untimed `CHECKPOINT`: the previous run's dirty pages (a "
            "differential leaves ~1 GB) are written out first, so that no run pays for its predecessor's "
            "checkpoint; each run's own writes still start its own checkpoints."),
            "Other work on the machine makes the figures noisy: see the load average above and the min–max.",
        ]
        descriptions = [
            ("Full initial load: `dbmig migrate` into a freshly created target database (every repeat): all six "
            "entities, every partition; rows/s over all source rows read. Afterwards (untimed) `VACUUM ANALYZE` "
            "of the target: the state autovacuum reaches within minutes, done now so that it does not run "
            "into the next measurement."),
            "Differential sync with nothing to do: `dbmig migrate` right after a full load.",
            ("As the daemon runs it: the same sync as one `migrate_all` run in the run worker's way "
            "(benchmarks/daemon_run.py: `execute_job` of the reconstructable job, its multiprocess executor, "
            "every partition); what a schedule, a sensor or the UI launches, without the daemon's queue and "
            "its polling. Peak RSS and client CPU are not reported: the steps are the forkserver's children. "
            "On Linux, interleaved with the same run whose steps are spawned (`DBMIG_STEP_START_METHOD=spawn`: "
            "a fresh interpreter per step, Dagster's default), so that the table shows what forking from the "
            "preloaded server saves."),
            (f"Changes: {args.changes:,} random source rows (default 100 K × scale) spread over the tables in "
            "proportion to their sizes (patients, orders and the rest), one column the mapping reads changed "
            "per row (benchmarks/workload.py); the differential rows bump `updated_at` (`clock_timestamp()`), "
            "fresh rows every repeat. Detection alone is `dbmig diff`; detection + load `dbmig migrate`."),
            ("Baseline: `dbmig baseline` over all six entities (aggregate checksums per id range on both sides, "
            "descending only into ranges that differ), once with nothing changed and once after the same number "
            "of silent changes (no `updated_at` bump), which only the hashes can find."),
            ("Checkpoint overhead: the full load with a checkpoint (cursor, counters, batch audit row) with every "
            "batch (the default) against one at the end (`DBMIG_CHECKPOINT_EVERY` very large; rows, hashes and "
            "errors still commit batch by batch), each into a fresh target, interleaved repeat by repeat with the "
            "default load (alternating the order)."),
            ("Parallel writers: the same full load with `DBMIG_WRITERS=1` (one batch written at a time) against "
            "the default (two batches of an entity written at once, each on its own connection, while the next "
            "is read), interleaved with the others."),
            ("Limit (a), raw COPY pipe: `COPY (SELECT <the columns the mapping reads> FROM t) TO STDOUT` piped "
            "(os.pipe, 64 KiB writes, psycopg2 `copy_expert`, a producer thread) into `COPY scratch.t FROM STDIN`; "
            "scratch = unlogged copies of the legacy tables (columns and types, no index), truncated before each "
            "repeat."),
            ("Limit (b), plain set-based load: per entity, parents first, one transaction: TEMP staging table, the "
            "same COPY pipe into it, ONE `INSERT … SELECT … JOIN <parent> ON legacy_id … ON CONFLICT (legacy_id) "
            "DO UPDATE` into a fresh `app` (the contract's DDL: uuid keys, FKs and CHECKs on) in a separate "
            "database. Simplest mapping: raw columns renamed, `(price * 100)::bigint`, the office address as "
            "`jsonb_build_object` of the raw columns, NULL contexts as `{}`, constants for enums whose legacy "
            "encoding differs and for values derived from JSON or lists; orders with a negative price or aligner "
            "count left out (CHECKs). No hashes, ledger, validation, error rows or checkpoints "
            "(benchmarks/limits.py, PLAIN_MAPPING)."),
            ("Limit (c), plain delta: after each repeat's changes, the same staging + upsert fed by "
            "`COPY (SELECT … WHERE updated_at BETWEEN <before> AND <after> ORDER BY updated_at, id)` into the full "
            "`app` of (b)."),
            ("Limit (d), range checksums: per legacy table one `SELECT (id - lo) / width, count(*), "
            "sum(('x' || left(md5(ROW(<columns>)::text), 16))::bit(64)::bigint) … GROUP BY 1` over 256 id ranges "
            "(the source half of `dbmig baseline` with nothing changed)."),
            ("dlt: `sql_database(backend=\"pyarrow\")` with `incremental(\"updated_at\")`, `primary_key=\"id\"`, "
            "`write_disposition=\"merge\"`, `loader_file_format=\"csv\"` into its own database; full = first run "
            "into an empty destination, incremental = the next run after each repeat's changes "
            "(benchmarks/dlt_compare.py). It copies the legacy rows as they are: no mapping, validation or hashes."),
        ]
        return render(
            command=command, scale=args.scale, repeat=args.repeat, source_rows=self.total_rows,
            machine_rows=machine(self.bench.server_version()), load_before=load_before, load_after=load_average(),
            rows=self._order(), memory=self.memory, entity_durations=self.entity_durations,
            entity_rows=self.counts, notes=notes, descriptions=descriptions, todos=self.todos,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = Suite(args)
    try:
        text = suite.run()
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(text)
    if args.write:
        write_benchmarks_md(args.output, text)
        say(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
