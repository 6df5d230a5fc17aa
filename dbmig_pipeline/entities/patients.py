"""patients → app.patients (MAPPING.md section 3, "patients").

An unknown status quarantines the patient (business_rule); a doubtful birth
date only loses the date (the sentinel silently, a future one with a warning).
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from dbmig_pipeline.entities import common
from dbmig_pipeline.entities.spec import BUSINESS_RULE, EntitySpec, ParentRef, TargetColumn, TransformResult

#: the legacy system's "birth date unknown"
UNKNOWN_BIRTH_DATE = dt.date(1900, 1, 1)
SEXES = {"M": "male", "F": "female"}
STATUSES = {0: "lead", 1: "active", 2: "in_treatment", 3: "completed", 9: "archived"}


def date_of_birth(batch: pd.DataFrame, verdicts: common.Verdicts) -> pd.Series:
    """Birth dates, None for the sentinel and (with a warning) for dates after the row's UTC creation date."""
    births = common.as_nullable_objects(batch["birth_date"])
    sentinel = births == UNKNOWN_BIRTH_DATE
    created_on = pd.to_datetime(batch["created_at"], utc=True).dt.tz_localize(None).dt.normalize()
    after_creation = pd.to_datetime(births) > created_on
    verdicts.warn(
        after_creation & ~sentinel,  # the sentinel's rule comes first (MAPPING.md §3): NULL, no warning
        "date_of_birth",
        lambda caught: "birth_date " + births[caught].astype(str) + " is after the row's creation date "
        + created_on[caught].dt.strftime("%Y-%m-%d") + " (UTC); stored as NULL",
    )
    return births.where(~(sentinel | after_creation), None)


def transform(batch: pd.DataFrame) -> TransformResult:
    verdicts = common.Verdicts(batch)
    given_name = common.trimmed(batch["first_name"])
    family_name = common.trimmed(batch["last_name"])
    verdicts.reject_empty({"first_name": given_name, "last_name": family_name})

    codes = batch["status"].astype("Int64")
    status = codes.map(STATUSES).astype(object)
    known = ",".join(str(code) for code in STATUSES)
    verdicts.reject(
        status.isna(),
        BUSINESS_RULE,
        lambda caught: "status " + codes[caught].astype(str) + f" is not a known patient status ({known})",
    )

    email, phone = common.contacts(batch, verdicts)
    sex = common.trimmed(batch["gender"]).str.upper().map(SEXES).fillna("unknown").astype(object)
    return verdicts.result(
        SPEC,
        {
            "given_name": given_name,
            "family_name": family_name,
            "date_of_birth": date_of_birth(batch, verdicts),
            "sex": sex,
            "email": email,
            "phone_e164": phone,
            "notes": common.trimmed(batch["notes"]),
            "status": status.where(status.notna(), None),
        },
    )


SPEC = EntitySpec(
    name="patients",
    source_table="patients",
    source_columns=(
        "id", "created_at", "updated_at", "doctor_id", "first_name", "last_name",
        "birth_date", "gender", "email", "phone", "status", "notes",
    ),
    target_table="patients",
    target_columns=(
        TargetColumn("given_name", "text"),
        TargetColumn("family_name", "text"),
        TargetColumn("date_of_birth", "date"),
        TargetColumn("sex", "app.sex"),
        TargetColumn("email", "text"),
        TargetColumn("phone_e164", "text"),
        TargetColumn("notes", "text"),
        TargetColumn("status", "app.patient_status"),
    ),
    transform=transform,
    parents=(ParentRef(entity="doctors", source_column="doctor_id", target_column="doctor_id"),),
    copied_times=(("birth_date", "date_of_birth"),),
    pii_columns=("given_name", "family_name", "date_of_birth", "email", "phone_e164", "notes"),
    description="Patients, each treated by one doctor.",
)
