"""Batches for transform tests, built as the reader builds them from psycopg2 rows."""
from __future__ import annotations

import pandas as pd

from dbmig_pipeline.entities.spec import EntitySpec


class EntityBatches:
    """One entity's test batches: every row is `good` with some columns overridden."""

    def __init__(self, spec: EntitySpec, good: dict):
        self.spec = spec
        self.good = good

    def batch(self, *overrides: dict) -> pd.DataFrame:
        records = []
        for number, override in enumerate(overrides, start=1):
            row = {**self.good, "id": number, **override}
            records.append(tuple(row[column] for column in self.spec.source_columns))
        return pd.DataFrame.from_records(records, columns=list(self.spec.source_columns))

    def only_row(self, **override) -> dict:
        """The one accepted row of a one-row batch (it must not be rejected)."""
        result = self.spec.transform(self.batch(override))
        assert result.rejects.empty, result.rejects.to_dict("records")
        assert len(result.rows) == 1
        return result.rows.iloc[0].to_dict()

    def only_reject(self, **override) -> dict:
        """The one reject of a one-row batch (it must not be loaded)."""
        result = self.spec.transform(self.batch(override))
        assert result.rows.empty
        [reject] = result.rejects.to_dict("records")
        return reject
