"""Benchmarks of dbmig: the product through its CLI, next to the limits of the hardware and to dlt.

`python -m benchmarks.run --scale 1.0` seeds the embedded legacy database under
a benchmark DBMIG_HOME (default `./.dbmig-bench`), measures, and prints a table;
`--write` regenerates BENCHMARKS.md. Benchmarks print figures; tests never
assert wall-clock times (the smoke test only checks that the harness runs).
"""
