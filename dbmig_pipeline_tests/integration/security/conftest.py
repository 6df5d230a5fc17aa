"""Fixtures of the security tests: a test CA, and PostgreSQL clusters reached over TCP.

One cluster with TLS (a certificate for `localhost` from a CA made here)
serves every test of this folder that needs TLS or passwords; one without
TLS is started only for the test that needs a server offering none.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from psycopg2 import sql

from dbmig_pipeline_tests.integration.security.local_cluster import LocalCluster, start_cluster

_counter = itertools.count()


@dataclass(frozen=True)
class CertificateFiles:
    ca_pem: Path  # the CA that signed the server's certificate
    other_ca_pem: Path  # a CA the server has nothing to do with
    cert_chain: Path
    key: Path


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> CertificateFiles:
    folder = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    cert = ca.issue_cert("localhost")  # the name only: 127.0.0.1 must fail verify-full
    files = CertificateFiles(folder / "ca.pem", folder / "other_ca.pem", folder / "server.crt", folder / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_pem))
    other.cert_pem.write_to_path(str(files.other_ca_pem))
    cert.private_key_pem.write_to_path(str(files.key))
    with files.cert_chain.open("wb") as chain:
        for pem in cert.cert_chain_pems:
            chain.write(pem.bytes())
    return files


@pytest.fixture(scope="session")
def tls_cluster(tmp_path_factory, test_ca: CertificateFiles) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("tls_cluster"), tls=(test_ca.cert_chain, test_ca.key))
    yield cluster
    cluster.stop()


@pytest.fixture
def plain_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("plain_cluster"), tls=None)
    yield cluster
    cluster.stop()


def create_database(cluster: LocalCluster, label: str, owner: str | None = None) -> str:
    name = f"s{next(_counter)}_{label}"
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner:
        query = sql.SQL("{} OWNER {}").format(query, sql.Identifier(owner))
    cluster.execute(query)
    return name


@pytest.fixture
def tls_database(tls_cluster: LocalCluster) -> Iterator[Callable[..., str]]:
    """Factory: tls_database("label", owner=None) creates a database on the TLS cluster, returns its name."""
    created: list[str] = []

    def _make(label: str = "db", owner: str | None = None) -> str:
        created.append(create_database(tls_cluster, label, owner))
        return created[-1]

    yield _make
    for name in created:
        tls_cluster.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
