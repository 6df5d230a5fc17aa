"""`dbmig dev --read-only`: people who may watch can read everything and launch nothing."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from dbmig_pipeline_tests.integration.security.cli_runner import DBMIG

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}"""
BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) { __typename ... on UnauthorizedError { message } }
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def read_only_ui(tmp_path, make_database):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBMIG_", "DAGSTER_"))}
    env.update({"DBMIG_HOME": str(tmp_path), "DBMIG_SOURCE_URL": make_database("legacy"),
                "DBMIG_DEST_URL": make_database("target"), "DAGSTER_PG_URL": make_database("dagster")})
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen([str(DBMIG), "dev", "--read-only", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "ui.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, (tmp_path / "ui.log").read_text()
                time.sleep(0.5)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the webserver and its code server with it
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def test_the_read_only_ui_shows_the_assets_and_refuses_to_launch(read_only_ui):
    port = read_only_ui
    assets = _graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    assert {"offices", "doctors", "patients", "orders", "jaws", "system_messages"} <= {
        a["assetKey"]["path"][-1] for a in assets}
    repos = _graphql(port, "{ repositoriesOrError { ... on RepositoryConnection "
                           "{ nodes { name location { name } } } } }")
    repo = repos["repositoriesOrError"]["nodes"][0]
    selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"]}

    launched = _graphql(port, LAUNCH, {"params": {"selector": {**selector, "jobName": "migrate_all"},
                                                  "runConfigData": {}}})["launchRun"]
    assert launched["__typename"] == "UnauthorizedError", launched
    backfill = _graphql(port, BACKFILL, {"params": {"selector": {"repositorySelector": selector,
                                                                 "partitionSetName": "migrate_all_partition_set"},
                                                    "partitionNames": ["2026-01-01"]}})["launchPartitionBackfill"]
    assert backfill["__typename"] == "UnauthorizedError", backfill
    runs = _graphql(port, "{ runsOrError { ... on Runs { results { runId } } } }")["runsOrError"]["results"]
    assert runs == []
