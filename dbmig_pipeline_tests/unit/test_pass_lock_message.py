"""How a running pass is named: another role's session hides its start time from ours."""
from datetime import datetime, timedelta, timezone

from dbmig_pipeline.engine.pass_lock import PassHolder


def test_a_holder_is_named_by_pid_application_and_start_in_utc():
    since = datetime(2026, 11, 24, 21, 5, 7, tzinfo=timezone(timedelta(hours=2)))
    assert PassHolder(4711, "dbmig-dest", since).describe() == (
        "destination session pid 4711, application 'dbmig-dest', connected since 2026-11-24 19:05:07 UTC")


def test_a_holder_of_another_role_is_named_without_what_pg_stat_activity_hides():
    assert PassHolder(4711, "dbmig-dest", None).describe() == "destination session pid 4711, application 'dbmig-dest'"
