"""What `staging.encode_csv` writes is what PostgreSQL reads back, whatever the session's time zone."""
from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import psycopg2
import pytest
from psycopg2.extras import Json

from dbmig_pipeline.engine.staging import copy_frame, create_staging
from dbmig_pipeline.entities.spec import TargetColumn

COLUMNS = (TargetColumn("id", "bigint"), TargetColumn("at", "timestamptz"), TargetColumn("doc", "jsonb"))
STAMPS = [datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC), None, datetime(1900, 1, 1, tzinfo=UTC),
          datetime(2024, 3, 10, 7, 30, tzinfo=UTC)]  # the last: the hour New York's clocks skip
DOCS = [{"a": "ü \" , \n", "n": [1, 2.5, None]}, None, {"big": 123456789012345678901234567890},
        {"1": True, "nested": {"x": []}}]


@pytest.fixture
def conn(make_database):
    connection = psycopg2.connect(make_database("stage").replace("postgresql+psycopg2://", "postgresql://", 1))
    yield connection
    connection.close()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kathmandu"])
def test_timestamps_and_json_read_back_exactly_in_any_session_time_zone(conn, zone):
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "at": pd.to_datetime(STAMPS, utc=True), "doc": DOCS})
    with conn.cursor() as cur:
        cur.execute("SET timezone = %s", (zone,))
        create_staging(cur, "stage_t", COLUMNS)
        copy_frame(cur, "stage_t", frame, COLUMNS)
        cur.execute("SET timezone = 'UTC'")
        cur.execute("SELECT id, at FROM stage_t ORDER BY id")
        got = cur.fetchall()
        assert [row[1] for row in got] == STAMPS
        for (legacy_id, _), doc in zip(got, DOCS):
            cur.execute("SELECT doc IS NOT DISTINCT FROM %s::jsonb FROM stage_t WHERE id = %s",
                        (None if doc is None else Json(doc), legacy_id))
            assert cur.fetchone()[0], legacy_id
