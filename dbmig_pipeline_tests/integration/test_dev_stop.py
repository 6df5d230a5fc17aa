"""`dbmig dev` stopped by a SIGTERM to it alone takes Dagster's processes with it."""
import signal
import time
from pathlib import Path

from dbmig_pipeline_tests.integration.dev_server import running_dev


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # ended meanwhile
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_a_sigterm_to_dbmig_dev_stops_the_ui_it_started(tmp_path, make_database):
    """A supervisor or `kill PID` signals the `dbmig` process only: the webserver and its code server used to
    run on, orphaned, holding the port, beside a new `dbmig dev` that could not bind it."""
    with running_dev(tmp_path, make_database, "--read-only") as (process, _):
        started = _descendants(process.pid)
        assert started, "dbmig dev started no process"
        process.send_signal(signal.SIGTERM)  # to dbmig alone, not its process group
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(started), (tmp_path / "ui.log").read_text()
