"""offices → app.offices (MAPPING.md section 3, "offices").

Only an empty name quarantines an office; bad phones and emails are
dropped with a warning and the office is still migrated.
"""
from __future__ import annotations

import pandas as pd

from dbmig_pipeline.entities import common
from dbmig_pipeline.entities.spec import EntitySpec, TargetColumn, TransformResult

#: legacy address column → key in the target `address` object, in output order
ADDRESS_KEYS = {
    "address1": "line1",
    "address2": "line2",
    "city": "city",
    "state": "region",
    "zip": "postal_code",
    "country": "country",
}


def transform(batch: pd.DataFrame) -> TransformResult:
    verdicts = common.Verdicts(batch)
    display_name = common.trimmed(batch["name"])
    verdicts.reject_empty({"name": display_name})

    email, phone = common.contacts(batch, verdicts)

    address = common.json_objects({key: common.trimmed(batch[column]) for column, key in ADDRESS_KEYS.items()})
    return verdicts.result(
        SPEC,
        {
            "display_name": display_name,
            "address": address,
            "phone_e164": phone,
            "email": email,
            "active": batch["is_active"].astype(bool),
        },
    )


SPEC = EntitySpec(
    name="offices",
    source_table="offices",
    source_columns=(
        "id", "created_at", "updated_at", "name", *ADDRESS_KEYS, "phone", "email", "is_active",
    ),
    target_table="offices",
    target_columns=(
        TargetColumn("display_name", "text"),
        TargetColumn("address", "jsonb"),
        TargetColumn("phone_e164", "text"),
        TargetColumn("email", "text"),
        TargetColumn("active", "boolean"),
    ),
    transform=transform,
    pii_columns=("email", "phone_e164"),
    description="Practices; the root of the entity graph.",
)
