"""`dbmig dev --read-only`: people who may watch can read everything and launch nothing."""
import json
import urllib.error
import urllib.request

import pytest

from dbmig_pipeline_tests.integration.dev_server import running_dev

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
    with running_dev(tmp_path, make_database, "--read-only") as (_, port):
        yield port


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
