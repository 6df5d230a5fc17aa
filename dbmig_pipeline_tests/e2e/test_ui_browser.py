"""The Dagster UI end to end: webserver and daemon (`dagster dev`), a real headless Chromium, one partition run.

Debian's chromium is driven through Playwright's `executable_path`: no
browser is downloaded. The run goes the way of every UI launch: queued,
dequeued by the daemon, executed by the multiprocess executor.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from dbmig_pipeline.db import resolve_endpoints
from dbmig_pipeline.demo.seed import seed_legacy
from dbmig_pipeline.instance import prepare_dagster_home
from dbmig_pipeline.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EDGES = {"offices": [], "doctors": ["offices"], "patients": ["doctors"], "orders": ["patients"],
         "jaws": [], "system_messages": []}
SCREENSHOT_COPY = Path("/tmp/dbmig-ui-screenshot.png")
_EXPORTED = ("DAGSTER_HOME", "DAGSTER_PG_URL", "DBMIG_SOURCE_URL", "DBMIG_DEST_URL", "DBMIG_HOME",
             "DBMIG_PARTITION_START")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query, "variables": variables or {}})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


def _wait(what: str, check, timeout: float, proc: subprocess.Popen, log: Path, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """The whole process group: webserver, daemon, code servers, run workers."""
    for sig, grace in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def dagster_ui(tmp_path, make_database, monkeypatch):
    """`dagster dev` in its own process group, on fresh databases, with the environment `dbmig env` prints."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    for name in _EXPORTED:  # recorded first, so what prepare_dagster_home exports into os.environ is undone
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    source = make_database("legacy")
    seed_legacy(source, scale=0.0005)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))}
    env.update(DBMIG_HOME=str(tmp_path / "dbmig"), DAGSTER_HOME=str(tmp_path / "dagster_home"),
               DBMIG_SOURCE_URL=source, DBMIG_DEST_URL=make_database("target"),
               DAGSTER_PG_URL=make_database("dagster"),
               DBMIG_PARTITION_START=(datetime.now(UTC).date() - timedelta(days=1)).isoformat())
    settings = Settings.from_env(env)
    env.update(prepare_dagster_home(settings, resolve_endpoints(settings)))
    port, log = _free_port(), tmp_path / "dagster-dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", "dbmig_pipeline.definitions", "-h", "127.0.0.1",
             "-p", str(port)],
            env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", proc, log
    finally:
        _stop(proc)


_LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  __typename ... on PythonError { message } } } } } }"""
_REPOSITORY = """query($loc: String!) { repositoryOrError(repositorySelector:
  {repositoryLocationName: $loc, repositoryName: "__repository__"}) { ... on Repository {
    schedules { name scheduleState { status } } sensors { name sensorState { status } } } } }"""
_ASSETS = "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }"
_LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
_RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _location(base: str) -> str | None:
    entries = _graphql(base, _LOCATIONS)["workspaceOrError"]["locationEntries"]
    states = {e["name"]: e["locationOrLoadError"] or {} for e in entries}  # empty while loading
    loaded = [name for name, state in states.items() if state.get("__typename") == "RepositoryLocation"]
    errors = [state["message"] for state in states.values() if state.get("__typename") == "PythonError"]
    assert not errors, errors
    return loaded[0] if loaded else None


def test_asset_graph_and_one_partition_run_in_the_browser(dagster_ui, tmp_path):
    base, proc, log = dagster_ui
    _wait("the webserver", lambda: urllib.request.urlopen(f"{base}/server_info", timeout=5).status == 200,
          60, proc, log)
    location = _wait("the code location", lambda: _location(base), 60, proc, log)

    nodes = {n["assetKey"]["path"][-1]: sorted(d["path"][-1] for d in n["dependencyKeys"])
             for n in _graphql(base, _ASSETS)["assetNodes"] if n["groupName"] == "migration"}
    assert nodes == EDGES

    repository = _graphql(base, _REPOSITORY, {"loc": location})["repositoryOrError"]
    states = [s["scheduleState"]["status"] for s in repository["schedules"]]
    states += [s["sensorState"]["status"] for s in repository["sensors"]]
    assert len(states) >= 3 and set(states) == {"STOPPED"}  # shipped stopped

    partition = datetime.now(UTC).date().isoformat()
    launched = _graphql(base, _LAUNCH, {"params": {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": "migrate_all"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    screenshot = tmp_path / "asset-graph.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/locations/{location}/asset-groups/migration", wait_until="domcontentloaded")
            for name in EDGES:
                page.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=30_000)

            def finished():
                status = _graphql(base, _RUN, {"id": run_id})["runOrError"]["status"]
                return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

            assert _wait(f"run {run_id}", finished, 120, proc, log, every=2) == "SUCCESS"
            page.reload(wait_until="domcontentloaded")
            for name in EDGES:
                page.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=30_000)
            page.wait_for_timeout(1500)  # let the graph finish its layout before the picture
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
