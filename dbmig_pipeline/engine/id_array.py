"""Lists of row ids as query parameters.

psycopg2 sends a Python list as `ARRAY[1,2,…]`, one parsed constant per
element: for the ten thousand ids of a batch the server spends more time
parsing the statement than running it. `IdArray` travels as one array
literal (`'{1,2,…}'::bigint[]`) instead; the values are ints, so nothing but
digits, commas and minus signs ever reaches the SQL text.
"""
from __future__ import annotations

from collections.abc import Iterable

from psycopg2.extensions import AsIs, register_adapter


class IdArray:
    """`ids` as a bigint[] parameter: `WHERE id = ANY(%s)` with `IdArray(ids)`."""

    __slots__ = ("ids",)

    def __init__(self, ids: Iterable[int]):
        self.ids = [int(i) for i in ids]

    def __len__(self) -> int:
        return len(self.ids)


def _adapt(value: IdArray) -> AsIs:
    return AsIs("'{" + ",".join(map(str, value.ids)) + "}'::bigint[]")


register_adapter(IdArray, _adapt)
