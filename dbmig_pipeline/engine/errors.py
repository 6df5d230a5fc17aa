"""Errors the engine raises, each saying what happened and what to do."""
from __future__ import annotations


class EngineError(RuntimeError):
    """Base class: an entity run cannot go on."""

    category = "technical"


class PreflightError(EngineError):
    """The source does not offer what the entity's spec reads; nothing was written."""

    category = "integrity"


class IntegrityHalt(EngineError):
    """Source data breaks an integrity rule (e.g. two orders, one order_number).

    The failing batch was rolled back; the entity stays stopped until the
    cause is fixed in the source, and the first run after the fix goes on
    from the same batch without manual clean-up.
    """

    category = "integrity"

    def __init__(self, message: str, legacy_ids: list[int]):
        super().__init__(message)
        self.legacy_ids = legacy_ids
