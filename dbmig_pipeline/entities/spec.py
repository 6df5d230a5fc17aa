"""The declarative description of one migrated entity.

An entity is declared once, here; the engine, the Dagster assets, the checks
and the CLI are all generated from these specs, so nothing about a table is
written twice.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

#: Error categories of MAPPING.md section 4.
TECHNICAL = "technical"
DATA_QUALITY = "data_quality"
BUSINESS_RULE = "business_rule"
MISSING_PARENT = "missing_parent"
INTEGRITY = "integrity"
CATEGORIES = (TECHNICAL, DATA_QUALITY, BUSINESS_RULE, MISSING_PARENT, INTEGRITY)

REJECT_COLUMNS = ("legacy_id", "category", "detail")
WARNING_COLUMNS = ("legacy_id", "column", "detail")


@dataclass(frozen=True)
class TargetColumn:
    """A mapped column of the target table, with its SQL type as in the target DDL."""

    name: str
    sql_type: str


@dataclass(frozen=True)
class ParentRef:
    """A foreign key the loader resolves from a legacy id to the parent's uuid."""

    entity: str  # parent entity name, e.g. "offices"
    source_column: str  # legacy FK column, e.g. "office_id"
    target_column: str  # uuid FK column in the target, e.g. "office_id"

    @property
    def staging_column(self) -> str:
        """Name of the column that carries the parent's legacy id through the transform."""
        return f"parent_legacy_{self.target_column}"


@dataclass(frozen=True)
class TransformResult:
    """What a transform makes of one batch.

    rows: one row per accepted source row with `legacy_id`, `created_at`,
        `source_updated_at`, one `ParentRef.staging_column` per parent, and
        every `EntitySpec.target_columns` name.
    rejects: quarantined rows (`legacy_id`, `category`, `detail`), at most one
        per source row: the first rule of MAPPING.md section 3 that it breaks.
    warnings: data-quality warnings on rows that are still migrated
        (`legacy_id`, `column`, `detail`).
    rejected_keys: the natural keys (`EntitySpec.unique_keys`) the quarantined
        rows map to (`legacy_id`, one column per key, NULL where empty): a
        loaded row whose new version is quarantined under another key no
        longer has its old one in the source.
    """

    rows: pd.DataFrame
    rejects: pd.DataFrame
    warnings: pd.DataFrame
    rejected_keys: pd.DataFrame | None = None


@dataclass(frozen=True)
class EntitySpec:
    """Everything the engine needs to know about one entity."""

    name: str
    source_table: str
    #: every source column read and hashed; `id`, `created_at` and the cursor column included
    source_columns: tuple[str, ...]
    target_table: str
    #: the mapped columns (bookkeeping columns and parent uuids excluded)
    target_columns: tuple[TargetColumn, ...]
    transform: Callable[[pd.DataFrame], TransformResult]
    parents: tuple[ParentRef, ...] = ()
    cursor_column: str = "updated_at"
    #: True where the source cursor column may be NULL (MAPPING.md: system_messages)
    cursor_nullable: bool = False
    source_schema: str = "public"
    target_schema: str = "app"
    conflict_key: str = "legacy_id"
    #: natural keys: two legacy rows mapping to one value is an integrity error
    unique_keys: tuple[str, ...] = ()
    #: dates and timestamps copied as they are, besides `created_at` and the cursor: (source column, target
    #: column); values Python cannot hold (±infinity, BC, after 9999) are written exactly (engine/exact_times.py)
    copied_times: tuple[tuple[str, str], ...] = ()
    #: target columns that hold personal data (masked on non-production targets)
    pii_columns: tuple[str, ...] = ()
    description: str = field(default="", compare=False)

    @property
    def parent_entities(self) -> tuple[str, ...]:
        return tuple(p.entity for p in self.parents)

    @property
    def target_column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.target_columns)
