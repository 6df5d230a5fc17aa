"""The migrated entities, in dependency order (parents before children).

Everything downstream (engine, assets, checks, CLI) iterates `ENTITIES`, so
adding an entity means adding its module here and nowhere else.
"""
from __future__ import annotations

from dbmig_pipeline.entities import doctors, jaws, offices, orders, patients, system_messages
from dbmig_pipeline.entities.spec import EntitySpec

ENTITIES: tuple[EntitySpec, ...] = (
    offices.SPEC,
    doctors.SPEC,
    patients.SPEC,
    orders.SPEC,
    jaws.SPEC,
    system_messages.SPEC,
)
ENTITY_NAMES: tuple[str, ...] = tuple(spec.name for spec in ENTITIES)
_BY_NAME = {spec.name: spec for spec in ENTITIES}


def get_entity(name: str) -> EntitySpec:
    """The spec called `name`; a KeyError naming the valid entities otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; valid entities: {', '.join(ENTITY_NAMES)}") from None


__all__ = ["ENTITIES", "ENTITY_NAMES", "get_entity"]
