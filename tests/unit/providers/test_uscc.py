"""Tests for voucher_service.providers.uscc (GB 32100-2015 Unified Social Credit Code)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voucher_service.providers.uscc import USCC_LENGTH, is_valid_uscc, uscc_check_char, uscc_problem

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

# Real, published codes of well-known legal persons. Each one exercises both
# check characters against data we did not generate ourselves; the last two
# have letters in the organisation code and an organisation check of 'X'.
REAL_CODES = [
    "91330100799655058B",  # Alibaba (China) Co., Ltd.
    "914403001922038216",  # Huawei Technologies Co., Ltd.
    "91440300708461136T",  # Shenzhen Tencent Computer Systems Co., Ltd.
    "91100000100003962T",  # Industrial and Commercial Bank of China
    "911000001000013428",  # Bank of China
    "91520000214434146R",  # Kweichow Moutai Co., Ltd.
    "91440300192317458F",  # BYD Co., Ltd.
    "12440600MB2C07549J",  # a Foshan public institution (事业单位), letters in org code
    "9144030071526726XG",  # Tencent Technology (Shenzhen), org check char 'X'
]


def _org_check(first8: str) -> str:
    # Independent re-statement of GB 11714 so the property test does not
    # merely echo the implementation's private helper.
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in first8]
    check = 11 - sum(v * w for v, w in zip(values, weights)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_codes_are_valid(code: str) -> None:
    assert uscc_problem(code) is None
    assert is_valid_uscc(code)
    assert uscc_check_char(code[:17]) == code[17]


def test_length_constant() -> None:
    assert USCC_LENGTH == 18


@pytest.mark.parametrize("code", REAL_CODES)
def test_every_other_check_char_is_rejected(code: str) -> None:
    for char in CHARSET:
        if char == code[-1]:
            continue
        bad = code[:-1] + char
        problem = uscc_problem(bad)
        assert problem == f"check character wrong: expected {code[-1]!r}, got {char!r}"
        assert not is_valid_uscc(bad)


def test_single_typo_in_body_is_rejected() -> None:
    # The mod-31 check catches any single substitution in positions 1-17.
    code = REAL_CODES[0]
    for position in range(17):
        for char in CHARSET:
            if char == code[position]:
                continue
            bad = code[:position] + char + code[position + 1 :]
            assert not is_valid_uscc(bad), bad


@pytest.mark.parametrize(
    "code,length",
    [("", 0), ("91330100799655058", 17), ("91330100799655058BB", 19)],
)
def test_wrong_length(code: str, length: int) -> None:
    assert uscc_problem(code) == f"wrong length: must be 18 characters, got {length}"
    assert not is_valid_uscc(code)


@pytest.mark.parametrize("bad", ["I", "O", "S", "V", "Z", "-", " ", "３"])
def test_characters_outside_charset(bad: str) -> None:
    code = REAL_CODES[0]
    mutated = code[:10] + bad + code[11:]
    assert uscc_problem(mutated) == f"invalid character {bad!r} at position 11"
    assert not is_valid_uscc(mutated)


def test_lowercase_is_rejected_with_hint() -> None:
    code = "91330100799655058b"
    problem = uscc_problem(code)
    assert problem is not None
    assert problem.startswith("invalid character 'b' at position 18")
    assert "lowercase" in problem
    assert not is_valid_uscc(code)
    assert not is_valid_uscc("12440600mb2c07549j")


def test_first_bad_character_is_reported() -> None:
    assert uscc_problem("I133010079965505ZB").startswith("invalid character 'I' at position 1")


@pytest.mark.parametrize("division", ["3301A0", "ABCDEF", "33010X"])
def test_division_must_be_digits(division: str) -> None:
    code = "91" + division + "799655058B"
    problem = uscc_problem(code)
    assert problem is not None
    assert problem.startswith("administrative division must be 6 digits")
    assert repr(division) in problem


def test_fullwidth_digit_in_division_is_an_invalid_character() -> None:
    # str.isdigit() is true for "３"; it must still be refused.
    assert uscc_problem("913３0100799655058B") == "invalid character '３' at position 4"


def test_organisation_code_check_char_wrong() -> None:
    # Position 16 changed: GB 11714 then wants 'X' at position 17, not '8'.
    code = "91330100799655048B"
    assert uscc_problem(code) == (
        "organisation code check character wrong (positions 9-17): expected 'X', got '8'"
    )


def test_organisation_code_check_wrong_even_when_c18_fits() -> None:
    # A code whose position 18 is right for its first 17 characters is still
    # refused when the embedded organisation code is inconsistent.
    first17 = "91330100" + "79965505" + "9"
    code = first17 + uscc_check_char(first17)
    assert uscc_problem(code) is not None
    assert "organisation code" in uscc_problem(code)


def test_non_string_is_rejected() -> None:
    assert uscc_problem(None) == "must be a string"  # type: ignore[arg-type]
    assert uscc_problem(913301007996550580) == "must be a string"  # type: ignore[arg-type]
    assert not is_valid_uscc(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "9133010079965505", "91330100799655058B", "9133010079965505I8"])
def test_check_char_rejects_malformed_prefix(bad: str) -> None:
    with pytest.raises(ValueError):
        uscc_check_char(bad)


def test_check_char_wraps_31_to_zero() -> None:
    # Sum ≡ 0 (mod 31) gives 31 - 0 = 31, which the standard maps to '0'.
    assert uscc_check_char("0" * 17) == "0"
    # Sum 1 gives 30, the last character of the charset.
    assert uscc_check_char("1" + "0" * 16) == "Y"


_body = st.text(alphabet=CHARSET, min_size=8, max_size=8)


@st.composite
def valid_prefixes(draw: st.DrawFn) -> str:
    head = draw(st.text(alphabet=CHARSET, min_size=2, max_size=2))
    division = draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    org8 = draw(_body)
    return head + division + org8 + _org_check(org8)


@settings(max_examples=200, deadline=None, database=None)
@given(valid_prefixes())
def test_property_only_the_computed_check_char_is_valid(prefix: str) -> None:
    check = uscc_check_char(prefix)
    assert check in CHARSET
    assert is_valid_uscc(prefix + check)
    for other in CHARSET:
        if other != check:
            assert uscc_problem(prefix + other) == (
                f"check character wrong: expected {check!r}, got {other!r}"
            )
