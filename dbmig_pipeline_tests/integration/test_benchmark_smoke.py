"""Smoke test of the benchmark harness (`python -m benchmarks.run`): it runs end to end.

Benchmarks print figures; this test asserts none of them (no wall-clock
assertions), only that the harness exits 0, prints every row of its table,
and regenerates BENCHMARKS.md without losing the lead's section.
"""
from __future__ import annotations

import subprocess
import sys
from importlib import util
from pathlib import Path

from benchmarks.report import MARKER, write_benchmarks_md
from benchmarks.workload import changes_per_table
from dbmig_pipeline.demo.embedded import ensure_server

REPO = Path(__file__).resolve().parents[2]

#: Every row of the results table, by the start of its label.
ROWS = (
    "Full initial load",
    "Differential sync with nothing to do (`dbmig migrate`)",
    "Differential sync with nothing to do, as the daemon runs it",
    "Steps spawned instead of forked",
    "Differential detection alone",
    "Differential detection + load",
    "Baseline with no changes",
    "Baseline after",
    "Checkpoint every batch",
    "One checkpoint at the end",
    "Limit (a)",
    "Limit (b)",
    "Limit (c)",
    "Limit (d)",
    "dlt full load",
    "dlt incremental",
)


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| measurement"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def test_harness_runs_at_a_tiny_scale_and_prints_every_row(tmp_path):
    home = tmp_path / "bench-home"
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(f"# old\n\n{MARKER}\n\n## What we tried\n\nkept by the harness\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.run", "--scale", "0.01", "--scales", "0.01", "--quick",
             "--home", str(home), "--write", "--output", str(output)],
            check=False, cwd=REPO, capture_output=True, text=True, timeout=600,
        )
    finally:
        if (home / "pgdata" / "postmaster.pid").exists():
            ensure_server(home).stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    rows = _table_rows(result.stdout)
    for start in ROWS:
        found = [cells for label, cells in rows.items() if label.startswith(start)]
        assert len(found) == 1, f"row {start!r} missing from the table:\n{result.stdout}"
        assert found[0][1], f"row {start!r} has no figure: {found[0]}"
    dlt_rows = [cells for label, cells in rows.items() if label.startswith("dlt")]
    if util.find_spec("dlt") is None:
        assert all("skipped" in cells[1] and "dlt is not installed" in cells[1] for cells in dlt_rows), dlt_rows
    assert "### Peak memory by scale" in result.stdout
    assert "| CPU |" in result.stdout and "| PostgreSQL |" in result.stdout

    written = output.read_text()
    assert written.startswith("# Benchmarks")
    assert written.count(MARKER) == 1 and written.rstrip().endswith("kept by the harness")


def test_benchmarks_md_keeps_everything_after_the_marker(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_benchmarks_md(path, "# Benchmarks\n\nfirst")
    assert MARKER in path.read_text() and "## What we tried" in path.read_text()
    path.write_text(path.read_text().replace("## What we tried", "## What we tried\n\n- COPY binary: 9 s"))
    write_benchmarks_md(path, "# Benchmarks\n\nsecond")
    text = path.read_text()
    assert "second" in text and "first" not in text and "- COPY binary: 9 s" in text
    assert not list(tmp_path.glob("BENCHMARKS.tmp*"))


def test_changes_are_spread_in_proportion_to_table_sizes():
    counts = {"offices": 5_000, "doctors": 50_000, "patients": 1_500_000, "orders": 1_900_000, "jaws": 20_000,
              "system_messages": 50_000}
    plan = changes_per_table(counts, 100_000)
    assert sum(plan.values()) == 100_000
    assert plan["orders"] > plan["patients"] > plan["doctors"] > plan["offices"] > 0
    assert changes_per_table(counts, 10) == {**{k: 0 for k in counts}, "patients": 4, "orders": 6}


def test_ab_compares_two_trees_on_the_differential_at_a_tiny_scale(tmp_path):
    """`python -m benchmarks.ab` seeds and loads an empty home, then times each version and the plain
    delta every round; its table names every version (no figures asserted)."""
    home = tmp_path / "ab-home"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.ab", "--scale", "0.01", "--rounds", "1", "--home", str(home),
             f"base={REPO}", f"same={REPO}"],
            check=False, cwd=REPO, capture_output=True, text=True, timeout=600,
        )
    finally:
        if (home / "pgdata" / "postmaster.pid").exists():
            ensure_server(home).stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "full load of the dbmig target" in result.stderr and "full load of the plain target" in result.stderr
    rows = _table_rows(result.stdout)
    assert {"base", "same", "plain delta"} <= set(rows), result.stdout
    assert rows["base"][4] == "1.000" and rows["base"][1], rows["base"]


def test_ab_names_a_tree_that_is_not_a_checkout(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ab", "--home", str(tmp_path / "never-started"), f"base={REPO}",
         f"other={tmp_path}"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert f"other: {tmp_path} is not a checkout of dbmig" in result.stderr
    assert not (tmp_path / "never-started").exists()
