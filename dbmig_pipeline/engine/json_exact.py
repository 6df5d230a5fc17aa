"""Source JSON read and written without changing a number.

PostgreSQL's jsonb keeps numbers as `numeric`: any number of digits, any
exponent. A Python float keeps about 15 significant digits and stops near
1e308, so `0.12345678901234567890` read as a float was written back
rounded, and `1e400` as null (MAPPING.md: `extra` is `details` without two
keys, the rest unchanged). Documents that may hold such a number are read
with their non-integers as Decimal (and integers beyond 64 bits too) and
written back with each number's own text; every other document keeps
orjson's fast path, which is exact for it.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal

import orjson

#: 16 or more digits (and points) in a row, or a three-digit exponent: a number a double may not hold exactly
_MAYBE_INEXACT = re.compile(r"[0-9][0-9.]{15}|[eE][+-]?[0-9]{3}")
_INT64 = range(-2 ** 63, 2 ** 63)


def _integer(text: str) -> int | Decimal:
    value = int(text)
    return value if value in _INT64 else Decimal(text)  # orjson writes 64-bit integers only


def _exactly(text: str):
    return json.loads(text, parse_float=Decimal, parse_int=_integer)


def loads(text: str):
    """One JSON document; Decimal for every number a float or a 64-bit integer would change."""
    if _MAYBE_INEXACT.search(text):
        return _exactly(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _exactly(text)


def _number_text(value):
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _wide_ints_as_decimals(value):
    if isinstance(value, dict):
        return {key: _wide_ints_as_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wide_ints_as_decimals(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        return Decimal(value)
    return value


def dumps(value) -> str:
    """JSON text of a document (Decimals as their own text), compact."""
    try:
        return orjson.dumps(value, default=_number_text).decode()
    except TypeError:  # integers beyond 64 bits or keys that are not strings, from elsewhere: slower, only then
        return orjson.dumps(_wide_ints_as_decimals(value), default=_number_text,
                            option=orjson.OPT_NON_STR_KEYS).decode()
