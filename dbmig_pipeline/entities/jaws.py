"""jaws → app.jaws (MAPPING.md section 3, "jaws").

`patient_ref` is a loose reference with no foreign key, so jaws have no
parent: the id is copied as `legacy_patient_id` even when it points nowhere.
One bad tooth token quarantines the whole jaw rather than silently losing a tooth.
"""
from __future__ import annotations

import pandas as pd

from dbmig_pipeline.entities import common
from dbmig_pipeline.entities.spec import DATA_QUALITY, EntitySpec, TargetColumn, TransformResult

ARCHES = {"U": "upper", "L": "lower"}
#: FDI two-digit notation: permanent quadrants 1–4 (teeth 1–8), primary quadrants 5–8 (teeth 1–5)
FDI_TEETH = frozenset(
    10 * quadrant + tooth
    for quadrant, last_tooth in ((1, 8), (2, 8), (3, 8), (4, 8), (5, 5), (6, 5), (7, 5), (8, 5))
    for tooth in range(1, last_tooth + 1)
)
_FDI_TEXT = frozenset(str(number) for number in FDI_TEETH)


def parse_teeth(teeth: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Sorted unique tooth numbers per row ([] where none), and the first invalid token per row (None if all valid).

    A token is valid when it is all ASCII digits and its value is an FDI
    tooth number, so "011" is tooth 11 but "1 1", "x" and "19" are not.
    """
    tokens = common.trimmed(common.as_nullable_objects(teeth).str.split(",").explode())
    tokens = tokens[tokens.notna()]
    digits = tokens.str.fullmatch(r"[0-9]+").astype(bool)
    valid = digits & tokens.str.lstrip("0").isin(_FDI_TEXT)
    first_invalid = tokens[~valid].groupby(level=0).first().reindex(teeth.index)

    numbers = pd.DataFrame({"row": tokens.index[valid.to_numpy()], "tooth": tokens[valid].astype("int64").to_numpy()})
    numbers = numbers.drop_duplicates().sort_values(["row", "tooth"])
    lists = numbers.groupby("row")["tooth"].agg(list).reindex(teeth.index)
    lists = lists.map(lambda found: found if isinstance(found, list) else [])
    return lists.astype(object), common.as_nullable_objects(first_invalid)


def transform(batch: pd.DataFrame) -> TransformResult:
    verdicts = common.Verdicts(batch)
    arch_codes = common.trimmed(batch["arch"])
    verdicts.reject_empty({"arch": arch_codes})
    verdicts.reject(
        ~arch_codes.isin(ARCHES), DATA_QUALITY, lambda caught: "arch " + common.shown(arch_codes[caught]) + " is not U or L"
    )
    teeth, first_invalid = parse_teeth(batch["teeth"])
    verdicts.reject(
        first_invalid.notna(),
        DATA_QUALITY,
        lambda caught: "teeth token " + common.shown(first_invalid[caught]) + " is not an FDI tooth number",
    )
    return verdicts.result(
        SPEC,
        {
            "legacy_patient_id": batch["patient_ref"].astype("Int64"),
            "arch": arch_codes.map(ARCHES).astype(object),
            "teeth": teeth,
            "scan_url": common.trimmed(batch["scan_url"]),
        },
    )


SPEC = EntitySpec(
    name="jaws",
    source_table="jaws",
    source_columns=("id", "created_at", "updated_at", "patient_ref", "arch", "teeth", "scan_url"),
    target_table="jaws",
    target_columns=(
        TargetColumn("legacy_patient_id", "bigint"),
        TargetColumn("arch", "app.arch"),
        TargetColumn("teeth", "smallint[]"),
        TargetColumn("scan_url", "text"),
    ),
    transform=transform,
    description="Scanned jaws; patient_ref is loose, so no parent.",
)
