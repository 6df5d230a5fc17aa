"""The results table, the machine description, and BENCHMARKS.md.

BENCHMARKS.md is rewritten above MARKER on every `--write`; everything from
MARKER on (the lead's "What we tried") is kept as it is.
"""
from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from benchmarks.measure import Sample, Spread

MARKER = "<!-- benchmarks.run keeps everything below this line when it rewrites this file -->"
_PLACEHOLDER = """\
## What we tried

_The lead fills this in: each optimisation tried, the figure before and after
(from the table above, same scale), and whether it stayed._
"""


@dataclass
class Row:
    """One line of the results table."""

    key: str
    label: str
    samples: list[Sample] = field(default_factory=list)
    #: rows moved or covered, for rows/s
    rows: int | None = None
    #: key of the dbmig row this one is compared with (limits, dlt): "dbmig ÷ this"
    compare_to: str | None = None
    note: str = ""
    #: set when the row was not measured: the reason, printed in place of the figures
    missing: str | None = None

    def seconds(self) -> Spread | None:
        return Spread.of([s.seconds for s in self.samples])

    def rss_mib(self) -> Spread | None:
        return Spread.of([s.peak_rss_kb / 1024 if s.peak_rss_kb else None for s in self.samples])

    def cpu(self, attr: str) -> Spread | None:
        return Spread.of([getattr(s, attr) for s in self.samples])


@dataclass
class MemoryRow:
    scale: float
    source_rows: int
    full: list[Sample]
    idle: list[Sample]


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _spread(spread: Spread | None, unit: str = "") -> str:
    if spread is None:
        return "–"
    if spread.low == spread.high:
        return f"{_num(spread.median)}{unit}"
    return f"{_num(spread.median)}{unit} ({_num(spread.low)}–{_num(spread.high)})"


def results_table(rows: list[Row]) -> str:
    by_key = {r.key: r for r in rows}
    lines = [
        ("| measurement | seconds: median (min–max) | rows | rows/s | peak RSS MiB | CPU s: client / server "
        "| dbmig ÷ this | notes |"),
        "|---|---|---:|---:|---|---|---:|---|",
    ]
    for row in rows:
        if row.missing:
            lines.append(f"| {row.label} | {row.missing} | | | | | | {row.note} |")
            continue
        seconds = row.seconds()
        rate = f"{row.rows / seconds.median:,.0f}" if row.rows and seconds and seconds.median else "–"
        client, server = row.cpu("client_cpu_s"), row.cpu("server_cpu_s")
        cpu = f"{_num(client.median) if client else '–'} / {_num(server.median) if server else '–'}"
        ratio = ""
        other = by_key.get(row.compare_to) if row.compare_to else None
        if other is not None and not other.missing and other.seconds() and seconds and seconds.median:
            ratio = f"{other.seconds().median / seconds.median:.2f}×"
        rows_text = f"{row.rows:,}" if row.rows is not None else "–"
        lines.append(f"| {row.label} | {_spread(seconds)} | {rows_text} | {rate} | {_spread(row.rss_mib())} "
                     f"| {cpu} | {ratio} | {row.note} |")
    return "\n".join(lines)


def memory_table(memory: list[MemoryRow]) -> str:
    lines = [("| scale | source rows | full load: peak RSS MiB | sync with nothing to do: peak RSS MiB "
             "| full load seconds |"),
             "|---:|---:|---|---|---|"]
    for m in memory:
        lines.append(f"| {m.scale:g} | {m.source_rows:,} | {_spread(Spread.of([s.peak_rss_kb / 1024 for s in m.full]))} "
                     f"| {_spread(Spread.of([s.peak_rss_kb / 1024 for s in m.idle]))} "
                     f"| {_spread(Spread.of([s.seconds for s in m.full]))} |")
    return "\n".join(lines)


def per_entity_table(durations: dict[str, list[float]], rows: dict[str, int]) -> str:
    lines = ["| entity | source rows | engine seconds: median (min–max) | rows/s | share |", "|---|---:|---|---:|---:|"]
    medians = {e: Spread.of(v) for e, v in durations.items()}
    total = sum(s.median for s in medians.values() if s) or 1.0
    for entity, spread in medians.items():
        rate = f"{rows.get(entity, 0) / spread.median:,.0f}" if spread and spread.median else "–"
        share = f"{100 * spread.median / total:.0f} %" if spread else "–"
        lines.append(f"| {entity} | {rows.get(entity, 0):,} | {_spread(spread)} | {rate} | {share} |")
    return "\n".join(lines)


# --- the machine ----------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(postgres: str) -> list[tuple[str, str]]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} ({usable} usable by this process)"),
        ("RAM", _ram_gib()),
        ("PostgreSQL", postgres),
        ("Python", platform.python_version()),
        ("OS", platform.platform()),
        ("packages", ", ".join(f"{p} {_version(p)}" for p in ("dagster", "pandas", "psycopg2-binary", "dlt",
                                                             "pyarrow"))),
        ("dbmig commit", _commit()),
    ]


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


# --- BENCHMARKS.md --------------------------------------------------------------

def render(*, command: str, scale: float, repeat: int, source_rows: int, machine_rows: list[tuple[str, str]],
           load_before: str, load_after: str, rows: list[Row], memory: list[MemoryRow],
           entity_durations: dict[str, list[float]], entity_rows: dict[str, int], notes: list[str],
           descriptions: list[str], todos: list[str]) -> str:
    """The generated part of BENCHMARKS.md (also what the harness prints)."""
    out = [
        "# Benchmarks",
        "",
        (f"_Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; everything above the marker "
        "line near the end is rewritten by `python -m benchmarks.run … --write`._"),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine_rows],
        f"| load average (1/5/15 min) | before {load_before}; after {load_after} |",
        "",
        f"## Results: scale {scale:g} ({source_rows:,} source rows), {repeat} repeat{'s' if repeat != 1 else ''}",
        "",
        ("Each figure is the median of the repeats, with min–max. Peak RSS is the kernel's maximum resident set "
        "of the process doing the work (the `dbmig` or dlt child; the limits run inside the harness and have "
        "none). CPU: the child's own user+system seconds / the PostgreSQL server's (all its processes, both "
        "databases). \"dbmig ÷ this\": dbmig's median time divided by this row's, i.e. how many times slower "
        "dbmig is than the limit (below 1: dbmig is faster)."),
        "",
        results_table(rows),
        "",
    ]
    if notes:
        out += [*[f"- {n}" for n in notes], ""]
    if entity_durations:
        out += ["### Full load by entity (the engine's own seconds, without process start-up)", "",
                per_entity_table(entity_durations, entity_rows), ""]
    if memory:
        out += ["### Peak memory by scale (it must not grow with table size)", "", memory_table(memory), ""]
    out += ["## What each row measures", "", *[f"- {d}" for d in descriptions], ""]
    if todos:
        out += ["## TODO", "", *[f"- {t}" for t in todos], ""]
    return "\n".join(out)


def write_benchmarks_md(path: Path, generated: str) -> None:
    """Replace the generated part of `path`, keeping everything from MARKER on."""
    kept = f"{MARKER}\n\n{_PLACEHOLDER}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if MARKER in text:
            kept = text[text.index(MARKER):]
    tmp = path.with_name(path.name.replace("BENCHMARKS", "BENCHMARKS.tmp", 1) if path.name.startswith("BENCHMARKS")
                         else path.name + ".tmp")
    tmp.write_text(generated.rstrip() + "\n\n" + kept.rstrip() + "\n", encoding="utf-8")
    tmp.replace(path)
