"""Source JSON numbers survive the trip through Python exactly (engine/json_exact.py)."""
from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest

from dbmig_pipeline.engine import json_exact

#: numbers a double or a 64-bit integer would change, and the text they must be written back as
EXACT = [
    ("0.12345678901234567890", "0.12345678901234567890"),
    ("1e400", "1E+400"),
    ("-1e-400", "-1E-400"),
    ("12345678901234567.5", "12345678901234567.5"),
    ("1.7976931348623157e+308", "1.7976931348623157E+308"),
    ("123456789012345678901234567890", "123456789012345678901234567890"),
    ("-9223372036854775809", "-9223372036854775809"),
    ("18446744073709551616", "18446744073709551616"),
]


@pytest.mark.parametrize("number, written", EXACT)
def test_a_number_a_float_would_change_is_written_back_as_the_same_number(number, written):
    document = json_exact.loads('{"keep": %s, "list": [%s, "x"]}' % (number, number))
    text = json_exact.dumps(document)
    assert text == '{"keep":%s,"list":[%s,"x"]}' % (written, written)
    assert Decimal(json.loads(text, parse_float=Decimal)["keep"]) == Decimal(number)


def test_documents_without_such_numbers_take_orjson_and_read_as_it_does():
    text = '{"a": 1, "b": [1, 2.5, null, true], "c": "12345678901234567890 in a string is text", "d": 1e-300}'
    plain = '{"a": 1, "b": [1, 2.5, null], "c": "x", "d": 2.5e-30, "e": 922337203685477}'
    assert json_exact.loads(plain) == orjson.loads(plain)
    assert all(not isinstance(v, Decimal) for v in json_exact.loads(plain).values())
    # a long digit run inside a string only sends the document down the exact path: the same values
    assert json_exact.loads(text) == json.loads(text, parse_float=Decimal)


def test_what_orjson_refuses_still_encodes():
    assert json_exact.dumps({1: Decimal("0.5")}) == '{"1":0.5}'
    assert json_exact.dumps({"big": [2 ** 70, -2 ** 63 - 1, True]}) == (
        '{"big":[1180591620717411303424,-9223372036854775809,true]}')


def test_text_prints_a_value_as_postgresql_s_arrow_operator_does():
    """`details->>'arches'` of a non-string: PostgreSQL's spacing, numbers as written (a quarantine detail)."""
    assert json_exact.text([Decimal("1.50"), 2, {"a": Decimal("0.1")}]) == '[1.50, 2, {"a": 0.1}]'
    assert json_exact.text({"deep": [[[Decimal("1E+400")]]]}) == '{"deep": [[[1E+400]]]}'


def test_a_document_nested_deeper_than_python_reads_is_kept_as_its_text():
    deep = '{"k": ' + "[" * 1000 + "1" + "]" * 1000 + "}"
    value = json_exact.loads(deep)
    assert value == json_exact.Unparsed(deep, 1001)
    assert json_exact.dumps(value) == deep


@pytest.mark.parametrize("document", [
    '{"x": ' + "[" * 300 + "]" * 300 + "}",  # deeper than orjson writes, read by json
    "[" + ", ".join(['{"a": [1]}'] * 600) + "]",  # many brackets, shallow
    '{"s": "' + "[" * 900 + '"}',  # brackets inside a string do not nest
])
def test_documents_within_the_depth_python_reads_are_parsed(document):
    value = json_exact.loads(document)
    assert not isinstance(value, json_exact.Unparsed)
    assert json.loads(json_exact.dumps(value)) == json.loads(document)


def test_depth_counts_brackets_outside_strings_only():
    assert json_exact.depth('{"a": "[[[{\\"", "b": [1]}') == 2
    assert (json_exact.depth("1"), json_exact.depth("[]"), json_exact.depth("[[], [[]]]")) == (0, 1, 3)
