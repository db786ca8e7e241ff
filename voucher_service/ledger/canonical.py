"""RFC 8785 (JSON Canonicalization Scheme) bytes for ledger values.

Written here rather than imported so the offline verifier needs nothing but
`cryptography`: ledger values are integers, strings, booleans, null, arrays
and objects, for which JCS is short. The test suite checks this against the
`rfc8785` package on generated values.
"""
from __future__ import annotations

import json

# JCS serialises numbers as IEEE 754 doubles (ECMAScript): integers beyond 2^53
# would be rounded, so they are refused rather than silently changed.
MAX_SAFE_INTEGER = 2**53 - 1

_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def _utf16_key(key: str) -> bytes:
    # RFC 8785 §3.2.3: object members sorted by their UTF-16 code units.
    return key.encode("utf-16-be")


def _write(value, out: list[str], path: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise TypeError(f"{path}: integer {value} is beyond 2^53 and cannot be canonical JSON")
        out.append(str(value))
    elif isinstance(value, float):
        # The ledger format promises integers only: 0.1 CNY as a float is
        # exactly the bug the fen rule exists to prevent.
        raise TypeError(f"{path}: floats are not allowed in ledger values")
    elif isinstance(value, str):
        # JSON.stringify escaping: \b \t \n \f \r \" \\ and \u00xx (lower-case)
        # for other controls, everything else literal; json's encoder agrees.
        out.append(_encode_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, f"{path}[{index}]")
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value, key=_check_key)):
            if index:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _write(value[key], out, f"{path}.{key}")
        out.append("}")
    else:
        raise TypeError(f"{path}: {type(value).__name__} is not a JSON value")


def _check_key(key) -> bytes:
    if not isinstance(key, str):
        raise TypeError("object keys must be strings")
    try:
        return _utf16_key(key)
    except UnicodeEncodeError:
        raise TypeError("object keys must be valid Unicode (no lone surrogates)") from None


def canonical_bytes(value) -> bytes:
    out: list[str] = []
    _write(value, out, "$")
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError("strings must be valid Unicode (no lone surrogates)") from None
