"""Start-up of the `dbmig` command without the garbage collector walking what start-up builds.

Importing Dagster, dagster-postgres, pandas and SQLAlchemy, and building the
Dagster instance and job, creates ~250,000 objects that live as long as the
process. While they are being made, CPython's cyclic collector walks them
again and again (four full collections) and finds nothing to free: ~0.4 s of
the ~2.5 s of a `dbmig migrate` with nothing to do, plus another full walk at
exit. So the command holds the collector off while it builds them, then
freezes them out of its sight (`gc.freeze`) and collects as usual, from then
on, whatever the work itself leaves behind.

Only the `dbmig` command does this (`begin_command`, called by its entry
point). Anywhere else (tests, the Dagster webserver, a run worker) `building`
changes nothing: freezing in a long-lived process would keep whatever garbage
exists at that moment for good.
"""
from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_command = False


def begin_command() -> None:
    """Called first by the `dbmig` entry point: from now on `building` holds the collector off."""
    global _command
    _command = True


@contextmanager
def building() -> Iterator[None]:
    """Around work that builds objects for the life of the command (imports, the Dagster instance).

    No collection inside. If the block imported modules, everything alive is then frozen out of the
    collector's sight: at start-up that is the imports and little else. A block that imports nothing
    (a second Dagster instance, in `dbmig demo`) freezes nothing, so the garbage of the work before it
    stays collectable. The collector's state before the block is restored (blocks may nest)."""
    if not _command:
        yield
        return
    modules = len(sys.modules)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > modules:
            gc.freeze()
        if enabled:
            gc.enable()
