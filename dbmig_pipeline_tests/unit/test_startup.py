"""The `dbmig` command builds its start-up objects with the collector held off, then freezes them.

The command's cases run in a fresh interpreter: they change the process's collector.
"""
import gc
import subprocess
import sys

from dbmig_pipeline import startup

# Prints, per line: the collector's state inside `building`, after it, and how many objects are frozen.
_COMMAND = """
import gc
from dbmig_pipeline import startup

startup.begin_command()
with startup.building():
    import dagster
    print("inside", gc.isenabled())
frozen = gc.get_freeze_count()
print("after", gc.isenabled(), frozen > 10_000)
with startup.building():
    garbage = [object() for _ in range(1000)]
print("imported nothing", gc.isenabled(), gc.get_freeze_count() == frozen)
with startup.building():
    with startup.building():
        import csv
    print("nested", gc.isenabled())
print("outer done", gc.isenabled())
try:
    with startup.building():
        raise RuntimeError("start-up failed")
except RuntimeError:
    print("after a failure", gc.isenabled())
"""


def test_the_command_holds_the_collector_off_while_building_then_freezes_what_it_imported():
    out = subprocess.run([sys.executable, "-c", _COMMAND], capture_output=True, text=True, check=True,
                         timeout=120).stdout.splitlines()
    assert out == ["inside False", "after True True", "imported nothing True True", "nested False",
                   "outer done True", "after a failure True"]


def test_outside_the_command_building_leaves_the_collector_alone():
    frozen = gc.get_freeze_count()
    with startup.building():
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_the_entry_point_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "dbmig_pipeline", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "migrate" in result.stdout and "baseline" in result.stdout
