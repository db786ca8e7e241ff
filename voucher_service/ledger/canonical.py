"""RFC 8785 (JSON Canonicalization Scheme) bytes for ledger values."""
import rfc8785


def _check_integers_only(value, path="$"):
    # The ledger format promises integers only: JCS would serialise a float,
    # but 0.1 CNY as a float is exactly the bug the fen rule exists to prevent.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise TypeError(f"{path}: floats are not allowed in ledger values")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: object keys must be strings")
            _check_integers_only(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_integers_only(item, f"{path}[{index}]")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical_bytes(value) -> bytes:
    _check_integers_only(value)
    return rfc8785.dumps(value)
