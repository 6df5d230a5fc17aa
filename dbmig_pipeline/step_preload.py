"""What every step of a run launched by the daemon or the UI starts with: imported once per run.

The multiprocess executor forks each step from a forkserver that imports
this module first (concurrency.py, decision 0011). It imports what every
step needs (dagster-postgres for the instance; the code location with the
engine, pandas and Arrow), so that a step starts from a fork instead of a
fresh interpreter that imports all of it again (~1.5 s per step, twelve
steps per `migrate_all` run). Then, as the `dbmig` command does (decision
0010), it freezes those objects out of the garbage collector's sight, so
that no step's collector walks them.

Importing it opens no database connection: the code location reads its
settings, nothing more.
"""
import gc

gc.disable()
try:
    import dagster_postgres  # noqa: F401
    import dbmig_pipeline.definitions  # noqa: F401
finally:
    gc.freeze()
    gc.enable()
