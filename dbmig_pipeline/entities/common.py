"""Vectorised building blocks shared by the entity transforms (MAPPING.md section 3, "General").

Every helper takes and returns pandas Series aligned on the batch index and
never mutates its input. Missing values always come out as Python `None`
(never NaN), because the loader hands them to the database as SQL NULL.
`Verdicts` guarantees the contract's "one reject per row, the first rule
wins": a row's verdict is fixed by the first rule that catches it, and
rules are applied in the order of MAPPING.md section 3.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from dbmig_pipeline.entities.spec import (
    DATA_QUALITY,
    REJECT_COLUMNS,
    WARNING_COLUMNS,
    EntitySpec,
    TransformResult,
)

#: Longest piece of a source value quoted in a reject or warning detail.
MAX_SHOWN = 100


def nones(index: pd.Index) -> pd.Series:
    """An object Series of `None` (pandas would store NaN for `pd.Series(None, ...)`)."""
    return pd.Series([None] * len(index), index=index, dtype=object)


def as_nullable_objects(values: pd.Series) -> pd.Series:
    """The values as an object Series with every missing value turned into `None`.

    pandas 3 infers a string dtype whose missing value is NaN; the database
    and the tests want `None`.
    """
    objects = values.astype(object)
    return objects.where(objects.notna(), None)


def _texts(values: pd.Series) -> np.ndarray:
    """The values as Python objects, every missing one `None`."""
    return values.to_numpy(dtype=object, na_value=None)


def _stripped(value) -> str | None:
    """`value.strip()` for text, None for anything else and for text that is all white space."""
    return (value.strip() or None) if isinstance(value, str) else None


def trimmed(values: pd.Series) -> pd.Series:
    """Trim like Python's `str.strip()` (all Unicode white space); empty → None.

    One Python loop over the values: pandas' `.str.strip()` and the masks
    around it cost two and a half times as much, and the trimming is
    Python's own whatever string storage pandas picked.
    """
    stripped = [(v.strip() or None) if isinstance(v, str) else None for v in _texts(values)]
    return pd.Series(stripped, index=values.index, dtype=object)


def shown(values: pd.Series) -> pd.Series:
    """Source values quoted for a human message, cut to `MAX_SHOWN` characters; missing ones as NULL."""
    text = as_nullable_objects(values).astype(str)
    ellipsis = np.where(text.str.len() > MAX_SHOWN, "…", "")
    return ("'" + text.str.slice(0, MAX_SHOWN) + ellipsis + "'").fillna("NULL")


def email(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Trimmed, lower-cased email, and the mask of values dropped for not having exactly one `@`."""
    emails: list[str | None] = []
    invalid = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(_texts(values)):
        value = _stripped(value)
        if value is not None and value.count("@") != 1:
            invalid[i], value = True, None
        emails.append(None if value is None else value.lower())
    return pd.Series(emails, index=values.index, dtype=object), pd.Series(invalid, index=values.index)


_NOT_A_DIGIT = re.compile(r"[^0-9]")


def phone_e164(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Phone in E.164 (`+1` and ten digits), and the mask of non-empty values that do not fit.

    Only ASCII digits count: E.164 is ASCII, and Unicode digits (which
    Python's `\\d` would keep) are not dialable as such.
    """
    phones: list[str | None] = []
    invalid = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(_texts(values)):
        value = _stripped(value)
        digits = "" if value is None else _NOT_A_DIGIT.sub("", value)
        if len(digits) == 10:
            phones.append("+1" + digits)
        elif len(digits) == 11 and digits[0] == "1":
            phones.append("+" + digits)
        else:
            phones.append(None)
            invalid[i] = value is not None
    return pd.Series(phones, index=values.index, dtype=object), pd.Series(invalid, index=values.index)


def contacts(batch: pd.DataFrame, verdicts: Verdicts) -> tuple[pd.Series, pd.Series]:
    """`email` and `phone_e164` of a batch, with a warning for each value that had to be dropped."""
    emails, bad_email = email(batch["email"])
    phones, bad_phone = phone_e164(batch["phone"])
    verdicts.warn(bad_email, "email",
                  lambda caught: "email " + shown(batch["email"][caught]) + " does not have exactly one @; stored as NULL")
    verdicts.warn(
        bad_phone,
        "phone_e164",
        lambda caught: "phone " + shown(batch["phone"][caught]) + " is not 10 digits or 1 + 10 digits; stored as NULL",
    )
    return emails, phones


def json_objects(columns: Mapping[str, pd.Series]) -> pd.Series:
    """One dict per row from the given columns, leaving out keys whose value is None.

    Building a Python dict per row is the one thing no column operation does.
    """
    frame = pd.DataFrame({key: as_nullable_objects(col) for key, col in columns.items()})
    records = frame.to_dict("records")
    objects = [{key: value for key, value in record.items() if value is not None} for record in records]
    return pd.Series(objects, index=frame.index, dtype=object)


#: A reject or warning message: one text for every row, or a function of the caught rows' mask that
#: returns their texts (a Series on their index). Messages are made only for rows a rule catches:
#: most rows pass every rule, and formatting a message for each of them cost a fifth of a transform.
Detail = str | Callable[[pd.Series], pd.Series]


def _details(detail: Detail, caught: pd.Series) -> pd.Series | str:
    return detail(caught) if callable(detail) else detail


def _empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})


class Verdicts:
    """The first quarantine reason of each row of a batch, and its warnings.

    Call `reject` once per rule, in the order of MAPPING.md section 3: a row
    already rejected keeps its first reason. Warnings are kept only for
    rows that end up migrated.
    """

    def __init__(self, batch: pd.DataFrame) -> None:
        self._batch = batch
        self._category = nones(batch.index)
        self._detail = nones(batch.index)
        self._warnings: list[pd.DataFrame] = []

    @property
    def rejected(self) -> pd.Series:
        return self._category.notna()

    def reject(self, mask: pd.Series, category: str, detail: Detail) -> None:
        """Quarantine the rows of `mask` not yet rejected, with `category` and `detail`."""
        new = mask.fillna(False).astype(bool) & ~self.rejected
        if not new.any():
            return
        self._category[new] = category
        self._detail[new] = _details(detail, new)

    def reject_empty(self, required: Mapping[str, pd.Series]) -> None:
        """The General text rule: an empty value (after trimming) for a NOT NULL target.

        `required` maps source column names to their trimmed values; the
        detail lists every such column that is empty on the row.
        """
        empty = pd.DataFrame({column: values.isna() for column, values in required.items()},
                             index=self._batch.index)

        def listed(caught: pd.Series) -> pd.Series:
            names = empty[caught].apply(lambda row: ", ".join(row.index[row.to_numpy(dtype=bool)]), axis=1)
            return names + " empty after trimming white space; the target column is NOT NULL"

        self.reject(empty.any(axis=1), DATA_QUALITY, listed)

    def warn(self, mask: pd.Series, column: str, detail: Detail) -> None:
        """Record a data-quality warning on `column` for the rows of `mask`."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        details = _details(detail, mask)
        self._warnings.append(
            pd.DataFrame(
                {"legacy_id": self._batch.loc[mask, "id"], "column": column, "detail": details},
                columns=list(WARNING_COLUMNS),
            )
        )

    def result(self, spec: EntitySpec, values: Mapping[str, pd.Series]) -> TransformResult:
        """Assemble the TransformResult: accepted rows in `spec` column order, rejects, warnings.

        `values` must hold exactly one Series per target column of `spec`;
        a missing or extra name is a programming error and raises.
        """
        expected = spec.target_column_names
        if set(values) != set(expected):
            raise ValueError(f"{spec.name}: transform produced {sorted(values)}, spec expects {sorted(expected)}")
        batch = self._batch
        keep = ~self.rejected
        rows = pd.DataFrame(
            {
                "legacy_id": batch["id"].astype("int64"),
                "created_at": batch["created_at"],
                "source_updated_at": batch[spec.cursor_column],
                **{p.staging_column: batch[p.source_column].astype("int64") for p in spec.parents},
                **{name: values[name] for name in expected},
            },
            index=batch.index,
        )
        rejects = pd.DataFrame(
            {"legacy_id": batch["id"].astype("int64"), "category": self._category, "detail": self._detail},
            columns=list(REJECT_COLUMNS),
        )[self.rejected]
        warnings = pd.concat(self._warnings) if self._warnings else _empty_frame(WARNING_COLUMNS)
        warnings = warnings[keep.loc[warnings.index].to_numpy(dtype=bool)]
        return TransformResult(
            rows=rows[keep].reset_index(drop=True),
            rejects=rejects.reset_index(drop=True),
            warnings=warnings.reset_index(drop=True),
            rejected_keys=rows.loc[self.rejected, ["legacy_id", *spec.unique_keys]].reset_index(drop=True),
        )
