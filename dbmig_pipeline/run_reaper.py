"""Runs of the command line whose process died, failed and their pool slots given back.

Why: `dbmig migrate` and `dbmig reconcile` execute their Dagster run in
their own process. A process killed mid-run (kill -9, out of memory, a
closed terminal) leaves the run STARTED for ever and its steps' slots of the
`dbmig_source` pool claimed; Dagster's run monitoring only watches runs its
daemon launched. Three such crashes used every slot (the pool's limit), and
every later run waited for a slot without a word. So each command-line run
carries the identity of its process, and the next one fails the runs whose
process is gone (on this host: other hosts' processes cannot be asked) and
frees every slot held by a run that has ended.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import dagster as dg

from dbmig_pipeline.run_requests import LAUNCHED_BY_TAG

log = logging.getLogger(__name__)

#: Run tag: "host:pid-namespace:pid:start", the process that executes a command-line run.
PROCESS_TAG = "dbmig/process"
LAUNCHED_BY_CLI = {LAUNCHED_BY_TAG: "cli"}
_UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" where it cannot be read: with the
    pid it names one process, not whichever process reuses the pid later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _pid_namespace() -> str:
    """The pid namespace of this process (Linux), "" elsewhere: two containers may share a host name, and
    a pid means nothing outside its namespace."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return ""


def this_process() -> str:
    """The value of PROCESS_TAG for a run executed in this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{_pid_namespace()}:{pid}:{_start_time(pid)}"


def is_gone(process: str) -> bool:
    """Whether the process a PROCESS_TAG names has ended; False where it cannot be told (another host or
    container)."""
    try:
        host, namespace, pid_text, started = process.rsplit(":", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if (host, namespace) != (socket.gethostname(), _pid_namespace()):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return bool(started) and _start_time(pid) not in ("", started)


def reap(instance: dg.DagsterInstance, pools: list[str]) -> list[str]:
    """Fail the command-line runs whose process is gone, free the slots of `pools` that ended runs hold;
    the ids of the runs failed."""
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED, tags=LAUNCHED_BY_CLI)):
        process = run.tags.get(PROCESS_TAG)
        if process and is_gone(process):
            pid = process.rsplit(":", 3)[2]
            instance.report_run_failed(run, f"the dbmig process that executed this run (pid {pid}) ended without "
                                            "finishing it (killed?); the next run resumes from its checkpoints")
            failed.append(run.run_id)
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return failed
    holders: set[str] = set()
    for pool in pools:
        info = storage.get_concurrency_info(pool)
        holders |= info.active_run_ids | info.assigned_run_ids | info.pending_run_ids
    for run_id in holders:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            log.info("freed the %s slots of run %s, which %s", ", ".join(pools), run_id,
                     "no longer exists" if run is None else f"ended ({run.status.value})")
    return failed
