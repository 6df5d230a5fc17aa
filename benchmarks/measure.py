"""Measuring one run: wall time, peak RSS and CPU of the process doing the work, CPU of the server.

A product run is a child process (`dbmig …`, as users run it), reaped with
`os.wait4` so that its own peak RSS and CPU time come from the kernel, not from
sampling. The database server's CPU over the same interval is read from /proc:
the postmaster's own and reaped children's time plus that of its live children
(backends, checkpointer, autovacuum). In-process measurements (the limits) take
the harness's own CPU instead of a child's.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


class BenchError(RuntimeError):
    """A measured command failed; the message carries the end of its output."""


@dataclass
class Sample:
    """One measured run."""

    seconds: float
    peak_rss_kb: int | None = None
    client_cpu_s: float | None = None
    server_cpu_s: float | None = None
    returncode: int = 0
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)
    #: what the run reported (parsed JSON of a `--json` command, or a limit's row counts)
    data: Any = field(default=None, repr=False)


class ServerCpu:
    """CPU seconds used so far by one PostgreSQL server (postmaster and all its processes)."""

    def __init__(self, pgdata: Path):
        self.pgdata = Path(pgdata)

    def _postmaster(self) -> psutil.Process | None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            return psutil.Process(pid)
        except (OSError, ValueError, IndexError, psutil.Error):
            return None

    def total(self) -> float | None:
        postmaster = self._postmaster()
        if postmaster is None:
            return None
        try:
            times = postmaster.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            children = postmaster.children()
        except psutil.Error:
            return None
        for child in children:
            try:
                t = child.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass  # exited meanwhile: its time is in the postmaster's children_* now
        return total


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else max(after - before, 0.0)


def run_child(cmd: Sequence[str], *, env: dict[str, str], cwd: str | Path | None = None,
              server: ServerCpu | None = None, timeout: float | None = None, check: bool = True,
              parse_json: bool = False) -> Sample:
    """Run `cmd` to completion; its peak RSS and CPU come from wait4 on exactly this child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cpu_before = server.total() if server else None
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        timer = None
        if timeout:
            timer = threading.Timer(timeout, lambda: _kill_group(proc.pid))
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        seconds = time.perf_counter() - started
        cpu_after = server.total() if server else None
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    sample = Sample(seconds=seconds, peak_rss_kb=usage.ru_maxrss, client_cpu_s=usage.ru_utime + usage.ru_stime,
                    server_cpu_s=_delta(cpu_before, cpu_after), returncode=proc.returncode,
                    stdout=stdout, stderr=stderr)
    if check and proc.returncode != 0:
        tail = "\n".join((stdout + "\n" + stderr).strip().splitlines()[-25:])
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    if parse_json:
        sample.data = last_json(stdout)
    return sample


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the child leads its own session (start_new_session)
    except ProcessLookupError:
        pass


def last_json(text: str) -> Any:
    """The last line of `text` that parses as JSON (commands may print warnings before it)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line[:1] in "[{":
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise BenchError(f"no JSON in the output:\n{text[-2000:]}")


def run_inprocess(fn: Callable[[], Any], *, server: ServerCpu | None = None) -> Sample:
    """Time `fn()` in this process (all its threads); `data` is what it returns."""
    cpu_before = server.total() if server else None
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    data = fn()
    seconds = time.perf_counter() - started
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_after = server.total() if server else None
    own = (own_after.ru_utime - own_before.ru_utime) + (own_after.ru_stime - own_before.ru_stime)
    return Sample(seconds=seconds, client_cpu_s=own, server_cpu_s=_delta(cpu_before, cpu_after), data=data)


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread | None:
        present = [v for v in values if v is not None]
        if not present:
            return None
        return cls(statistics.median(present), min(present), max(present))
