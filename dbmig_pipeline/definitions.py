"""The Dagster code location: it only assembles what the other modules build."""
from __future__ import annotations

import dagster as dg

from dbmig_pipeline.resources import DestinationDatabase, SourceDatabase

defs = dg.Definitions(
    resources={"source_db": SourceDatabase(), "dest_db": DestinationDatabase()},
)
