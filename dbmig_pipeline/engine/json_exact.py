"""Source JSON read and written without changing a number.

PostgreSQL's jsonb keeps numbers as `numeric`: any number of digits, any
exponent. A Python float keeps about 15 significant digits and stops near
1e308, so `0.12345678901234567890` read as a float was written back
rounded, and `1e400` as null (MAPPING.md: `extra` is `details` without two
keys, the rest unchanged). Documents that may hold such a number are read
with their non-integers as Decimal (and integers beyond 64 bits too) and
written back with each number's own text; every other document keeps
orjson's fast path, which is exact for it.

A document nested deeper than `MAX_DEPTH` (PostgreSQL takes thousands of
levels; Python's parser and encoder recurse per level against the
interpreter's limit of 1,000 frames) is not read into Python objects at
all: it stays the source's text (`Unparsed`), written back as it is.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate

import orjson

#: 16 or more digits (and points) in a row, or a three-digit exponent: a number a double may not hold exactly
_MAYBE_INEXACT = re.compile(r"[0-9][0-9.]{15}|[eE][+-]?[0-9]{3}")
_INT64_MIN, _INT64_END = -2 ** 63, 2 ** 63


#: Deepest nesting read into Python objects: json's C parser and encoder recurse once per level, and
#: the thread that calls them has frames of its own below the interpreter's limit (1,000)
MAX_DEPTH = 500
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


@dataclass(frozen=True)
class Unparsed:
    """A document nested deeper than MAX_DEPTH: the source's own text (PostgreSQL wrote it, so it is
    JSON), which `dumps` writes back unchanged. Its keys cannot be read."""

    text: str
    depth: int


def depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets within strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if b in "[{" else -1 for b in brackets), default=0)


def _integer(text: str) -> int | Decimal:
    if len(text) > 18:  # beyond 64 bits maybe (orjson writes those only), or beyond int()'s digit limit
        value = Decimal(text)
        return int(value) if _INT64_MIN <= value < _INT64_END else value
    return int(text)


def _exactly(text: str):
    try:
        return json.loads(text, parse_float=Decimal, parse_int=_integer)
    except RecursionError:  # a caller already deep in its own frames
        return Unparsed(text, depth(text))


def loads(text: str):
    """One JSON document; Decimal for every number a float or a 64-bit integer would change; `Unparsed`
    for one nested deeper than MAX_DEPTH."""
    if text.count("[") + text.count("{") > MAX_DEPTH:  # (nests no deeper than it has brackets)
        nesting = depth(text)
        if nesting > MAX_DEPTH:
            return Unparsed(text, nesting)
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


def _stdlib(value, separators: tuple[str, str]) -> str:
    """`json`'s text of `value` with each Decimal as its own text: json writes a Decimal only as a string,
    so it goes in as a marked string and the marks come out again. Integers of any size, keys of any
    type, and nesting down to Python's recursion limit, as `json` writes them."""
    mark = f"@dbmig-number-{uuid.uuid4().hex}:"
    text = json.dumps(value, ensure_ascii=False, separators=separators,
                      default=lambda o: mark + str(o) if isinstance(o, Decimal) else _number_text(o))
    return re.sub('"' + re.escape(mark) + r'([^"]*)"', lambda m: m.group(1), text)


def dumps(value) -> str:
    """JSON text of a document (Decimals as their own text), compact; an `Unparsed` one as it came."""
    if isinstance(value, Unparsed):
        return value.text
    try:
        return orjson.dumps(value, default=_number_text).decode()
    except TypeError:  # integers beyond 64 bits, keys that are not strings, nesting orjson refuses: slower
        return _stdlib(value, (",", ":"))


def text(value) -> str:
    """What PostgreSQL's `->>` prints for a JSON value that is not a string (`[1.5, 2]`, `{"a": 1}`)."""
    return _stdlib(value, (", ", ": "))
