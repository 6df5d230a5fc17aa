"""Run `dbmig`: as the installed console script in a clean environment, or in-process for quick commands."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

DBMIG = Path(sys.executable).with_name("dbmig")


def _clean(env: dict[str, str]) -> dict[str, str | None]:
    """`env` over the caller's environment without any DBMIG_/DAGSTER_ variable: nothing leaks in."""
    ours = {k: None for k in os.environ if k.startswith(("DBMIG_", "DAGSTER_"))}
    return {**ours, **env}


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`dbmig ARGS` in a child process, as a user or cron job runs it."""
    full_env = {k: v for k, v in {**os.environ, **_clean(env)}.items() if v is not None}
    return subprocess.run([str(DBMIG), *args], env=full_env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def invoke_cli(*args: str, env: dict[str, str]) -> Outcome:
    """`dbmig ARGS` in this process (no interpreter start-up): for commands that run no Dagster job."""
    from dbmig_pipeline.cli import main

    result = CliRunner().invoke(main, list(args), env=_clean(env), catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)
