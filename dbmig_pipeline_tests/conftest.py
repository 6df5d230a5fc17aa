"""Shared fixtures: one embedded PostgreSQL server per test session.

Integration tests get fresh databases on it; nothing is mocked and nothing is
skipped for want of a connection string.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from dbmig_pipeline.demo.embedded import EmbeddedServer, ensure_server

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Iterator[EmbeddedServer]:
    server = ensure_server(tmp_path_factory.mktemp("dbmig_home"))
    yield server
    server.stop()


@pytest.fixture
def make_database(pg_server: EmbeddedServer) -> Iterator[Callable[[str], str]]:
    """Factory: make_database("label") creates an empty database and returns its URL."""
    created: list[str] = []

    def _make(label: str = "db") -> str:
        name = f"t{os.getpid()}_{next(_counter)}_{label}"[:63]
        pg_server.ensure_database(name)
        created.append(name)
        return pg_server.url(name)

    yield _make
    for name in created:
        pg_server.drop_database(name)
