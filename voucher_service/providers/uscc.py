"""Unified Social Credit Code (统一社会信用代码, GB 32100-2015) validation.

Layout of the 18 characters (1-based positions, as the standard numbers them):

    1      registration authority (登记管理部门代码), e.g. 1 机构编制, 5 民政, 9 工商
    2      organisation category (机构类别代码), e.g. "91" company, "12" public institution
    3-8    administrative division of the registering authority (GB/T 2260), digits only
    9-17   organisation code (组织机构代码, GB 11714), itself ending in a check character
    18     check character over positions 1-17 (mod 31)

Pure functions only: providers and enterprises are validated from the API, the CLI
seed loader and the offline tooling alike, so this module must not pull in Flask or
the database.

Known limitation, accepted on purpose: a small number of codes issued before the
standard was fully rolled out (for example some Xiamen registrations before 2016)
carry a position-18 character that does not satisfy GB 32100. They are rejected here:
accepting them would mean not checking position 18 at all, which would let every
single-character typo through for everyone else.
"""

from __future__ import annotations

USCC_LENGTH = 18

# The standard drops I, O, Z, S and V because they are too easily misread as
# 1, 0, 2, 5 and U. The position of a character in this string is its value
# in the mod-31 check.
CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(CHARSET)}

# W_i = 3^i mod 31. Derived rather than typed out so a transcription slip in a
# 17-element table cannot silently accept wrong codes.
_WEIGHTS = tuple(pow(3, i, 31) for i in range(USCC_LENGTH - 1))

# GB 11714 (organisation code) check, applied to positions 9-16 -> position 17.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# Explicit ASCII digits: str.isdigit() also accepts full-width and other Unicode
# digits (e.g. "３"), which are not valid in a code.
_DIGITS = frozenset("0123456789")

_DIVISION = slice(2, 8)
_ORG_CODE = slice(8, 17)


def _org_value(char: str) -> int:
    # GB 11714 values letters by their place in the full Latin alphabet
    # (A=10 ... Z=35), not by their index in the reduced USCC charset:
    # "J" is worth 19 here but 18 in the mod-31 check.
    if char in _DIGITS:
        return int(char)
    return ord(char) - ord("A") + 10


def _org_check_char(first8: str) -> str:
    total = sum(_org_value(c) * w for c, w in zip(first8, _ORG_WEIGHTS))
    check = 11 - total % 11
    if check == 10:
        return "X"
    if check == 11:
        return "0"
    return str(check)


def uscc_check_char(first17: str) -> str:
    """Return the GB 32100 check character (position 18) for the first 17 characters.

    Raises ValueError when ``first17`` is not 17 characters from the USCC charset,
    because a check character of a malformed prefix would be meaningless.
    """
    if not isinstance(first17, str) or len(first17) != USCC_LENGTH - 1:
        raise ValueError(f"expected {USCC_LENGTH - 1} characters")
    for position, char in enumerate(first17, start=1):
        if char not in _VALUE:
            raise ValueError(f"invalid character {char!r} at position {position}")
    total = sum(_VALUE[c] * w for c, w in zip(first17, _WEIGHTS))
    # 31 - (total mod 31) lies in 1..31; 31 wraps to the character valued 0.
    return CHARSET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """Return None for a valid USCC, else a short English message naming the problem.

    The checks run from coarse to fine so that the message points at the first
    thing a person should fix: a code with a typo in the middle reports the
    organisation-code check before the overall check character, since the latter
    would wrongly suggest that the last character is the one to change.
    """
    if not isinstance(code, str):
        return "must be a string"
    if len(code) != USCC_LENGTH:
        return f"wrong length: must be {USCC_LENGTH} characters, got {len(code)}"

    for position, char in enumerate(code, start=1):
        if char in _VALUE:
            continue
        if char.islower():
            # Not upper-cased for the caller: the stored code must be exactly
            # what was registered, so we ask for the canonical form instead.
            return (
                f"invalid character {char!r} at position {position}: "
                "lowercase letters are not allowed, use uppercase"
            )
        return f"invalid character {char!r} at position {position}"

    division = code[_DIVISION]
    if not all(c in _DIGITS for c in division):
        return (
            "administrative division must be 6 digits "
            f"(positions 3-8), got {division!r}"
        )

    org_code = code[_ORG_CODE]
    expected_org = _org_check_char(org_code[:8])
    if org_code[8] != expected_org:
        return (
            "organisation code check character wrong (positions 9-17): "
            f"expected {expected_org!r}, got {org_code[8]!r}"
        )

    expected = uscc_check_char(code[: USCC_LENGTH - 1])
    if code[-1] != expected:
        return f"check character wrong: expected {expected!r}, got {code[-1]!r}"
    return None


def is_valid_uscc(code: str) -> bool:
    """True when ``code`` is a well-formed USCC with correct check characters."""
    return uscc_problem(code) is None
