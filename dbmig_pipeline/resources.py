"""Dagster resources for the two databases.

Each resource owns one pooled engine, created when a run starts and disposed
when it ends. URLs and passwords come from the environment through
`Settings` at launch, never from run config, so they are never shown in the
UI or stored in run metadata.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Connection, Engine

from dbmig_pipeline.db import DEST_MIN_SERVER_VERSION, check_connection, create_db_engine, resolve_endpoints
from dbmig_pipeline.settings import Settings


class _Database(dg.ConfigurableResource):
    _engine: Engine | None = PrivateAttr(default=None)
    _settings: Settings | None = PrivateAttr(default=None)

    _side = "source"

    def _build(self, settings: Settings) -> Engine:
        endpoints = resolve_endpoints(settings)
        if self._side == "source":
            return create_db_engine(endpoints.source_url, settings.source, settings, read_only=True, purpose="source")
        return create_db_engine(endpoints.dest_url, settings.dest, settings, read_only=False, purpose="dest")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = Settings.from_env()
        self._engine = self._build(self._settings)
        side = self._settings.source if self._side == "source" else self._settings.dest
        check_connection(self._engine, side, self._settings,
                         min_server_version=0 if self._side == "source" else DEST_MIN_SERVER_VERSION)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError(f"the {self._side} database resource is used outside a run")
        return self._engine

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError(f"the {self._side} database resource is used outside a run")
        return self._settings

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn


class SourceDatabase(_Database):
    """The legacy database, opened read-only."""

    _side = "source"


class DestinationDatabase(_Database):
    """The new system's database, holding `app` and the control schema `dbmig`."""

    _side = "dest"
