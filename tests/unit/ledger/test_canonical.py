"""Our RFC 8785 (JCS) encoder agrees byte for byte with the `rfc8785` package
on every integer-only JSON value, and refuses what JCS cannot carry exactly."""
from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voucher_service.ledger import canonical_bytes
from voucher_service.ledger.canonical import MAX_SAFE_INTEGER

SAFE_INTEGERS = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
UNSAFE_INTEGERS = st.one_of(st.integers(min_value=MAX_SAFE_INTEGER + 1),
                            st.integers(max_value=-MAX_SAFE_INTEGER - 1))

# Characters whose escaping or ordering is where encoders differ: every C0
# control, DEL, quote and backslash, solidus (not escaped by JCS), the JS line
# separators U+2028/2029 (literal in JCS), BOM, private use, non-characters,
# and non-BMP characters (surrogate pairs in UTF-16, so they sort *before*
# U+E000..U+FFFF in JCS although their code points are larger).
SPECIAL_CHARACTERS = [chr(c) for c in range(0x20)] + [
    "\x7f", '"', "\\", "/", "\u2028", "\u2029", "\ufeff", "\ue000", "\uffff", "\ufffd", "\u0080", "\u00f6",
    "\u20ac", "\ufb33", "\U0001f600", "\U00010000", "\U0010ffff", "中", "券", "a", "A", "1", " "]
CHARACTERS = st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(SPECIAL_CHARACTERS))
STRINGS = st.text(alphabet=CHARACTERS, max_size=12)
# Keys from a small alphabet straddling the surrogate range so that objects
# often hold keys whose UTF-16 order differs from their code point order.
KEY_CHARACTERS = st.sampled_from(["a", "b", "\u00f6", "\u20ac", "\ue000", "\ufb33", "\uffff",
                                  "\U00010000", "\U0001f600", "\U0010ffff", "\r", "1"])
KEYS = st.one_of(st.text(alphabet=KEY_CHARACTERS, max_size=4), STRINGS)
SCALARS = st.one_of(st.none(), st.booleans(), SAFE_INTEGERS, STRINGS)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(KEYS, children, max_size=6)),
    max_leaves=30,
)


@settings(max_examples=200)
@given(VALUES)
@example({"\ue000": 1, "\U0001f600": 2, "a": 3})
@example({"\u2028": "\u2028\u2029", "\x00": "\x1f\x7f"})
@example([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, -0, True, False, None])
def test_canonical_bytes_match_the_rfc8785_package(value):
    ours = canonical_bytes(value)
    assert ours == rfc8785.dumps(value)
    assert json.loads(ours) == value
    assert canonical_bytes(json.loads(ours)) == ours  # a fixed point


@settings(max_examples=200)
@given(st.dictionaries(st.text(alphabet=KEY_CHARACTERS, min_size=1, max_size=3), SAFE_INTEGERS, min_size=2))
def test_object_members_are_sorted_by_utf16_code_units(value):
    keys = list(json.loads(canonical_bytes(value)))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))


def test_rfc8785_section_3_2_3_sorting_example():
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
             "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
             "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(json.loads(canonical_bytes(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    # Code point order would put the emoji last: JCS does not.
    assert keys != sorted(value)
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_rfc8785_section_3_2_2_2_string_example():
    value = "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/"
    assert canonical_bytes(value) == '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode("utf-8")


def test_non_ascii_is_utf8_not_escaped():
    assert canonical_bytes({"name": "上海市", "e": "\U0001f600"}) == '{"e":"😀","name":"上海市"}'.encode("utf-8")
    assert canonical_bytes("\u2028") == b'"\xe2\x80\xa8"'


@given(st.floats(allow_nan=True, allow_infinity=True))
@example(1.0)
@example(-0.0)
@example(0.1)
def test_floats_are_refused(number):
    for value in (number, [1, number], {"a": {"b": [number]}}):
        with pytest.raises(TypeError):
            canonical_bytes(value)


@given(UNSAFE_INTEGERS)
@example(MAX_SAFE_INTEGER + 1)
@example(-MAX_SAFE_INTEGER - 1)
@example(2**64)
def test_integers_beyond_2_to_the_53_are_refused(number):
    for value in (number, [number], {"amount": number}):
        with pytest.raises(TypeError):
            canonical_bytes(value)


def test_the_safe_integer_boundaries_are_accepted():
    assert canonical_bytes([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == b"[9007199254740991,-9007199254740991]"


@pytest.mark.parametrize("value", [
    {1: "a"}, {None: 1}, b"bytes", {1, 2}, object(), "\ud800", ["\udfff"], {"k": "\ud800"}, {"\udc00": 1},
])
def test_other_values_are_refused_with_type_error(value):
    with pytest.raises(TypeError):
        canonical_bytes(value)
