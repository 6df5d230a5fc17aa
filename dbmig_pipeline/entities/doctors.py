"""doctors → app.doctors (MAPPING.md section 3, "doctors").

`specialty` never quarantines: an unknown code is `other`. Only empty
names or an empty specialty (NOT NULL in the target) do.
"""
from __future__ import annotations

import pandas as pd

from dbmig_pipeline.entities import common
from dbmig_pipeline.entities.spec import EntitySpec, ParentRef, TargetColumn, TransformResult

#: legacy specialty code (upper-cased) → app.specialty; anything else is "other"
SPECIALTIES = {"ORTHO": "orthodontist", "GP": "general_dentist", "PEDO": "pediatric_dentist"}


def specialty(codes: pd.Series) -> pd.Series:
    """Map trimmed specialty codes case-insensitively; None stays None (it is quarantined)."""
    mapped = codes.str.upper().map(SPECIALTIES).fillna("other")
    return mapped.where(codes.notna(), None).astype(object)


def transform(batch: pd.DataFrame) -> TransformResult:
    verdicts = common.Verdicts(batch)
    given_name = common.trimmed(batch["first_name"])
    family_name = common.trimmed(batch["last_name"])
    codes = common.trimmed(batch["specialty"])
    verdicts.reject_empty({"first_name": given_name, "last_name": family_name, "specialty": codes})

    email, phone = common.contacts(batch, verdicts)
    return verdicts.result(
        SPEC,
        {
            "given_name": given_name,
            "family_name": family_name,
            "email": email,
            "phone_e164": phone,
            "license_number": common.trimmed(batch["license_no"]),
            "specialty": specialty(codes),
            "active": batch["is_active"].astype(bool),
        },
    )


SPEC = EntitySpec(
    name="doctors",
    source_table="doctors",
    source_columns=(
        "id", "created_at", "updated_at", "office_id", "first_name", "last_name",
        "email", "phone", "license_no", "specialty", "is_active",
    ),
    target_table="doctors",
    target_columns=(
        TargetColumn("given_name", "text"),
        TargetColumn("family_name", "text"),
        TargetColumn("email", "text"),
        TargetColumn("phone_e164", "text"),
        TargetColumn("license_number", "text"),
        TargetColumn("specialty", "app.specialty"),
        TargetColumn("active", "boolean"),
    ),
    transform=transform,
    parents=(ParentRef(entity="offices", source_column="office_id", target_column="office_id"),),
    pii_columns=("given_name", "family_name", "email", "phone_e164", "license_number"),
    description="Dentists, each in one office.",
)
