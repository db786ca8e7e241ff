"""Reading the verifier's input files, each within a size bound, so that a
wrong or hostile file ends in a VerificationError, not in exhausted memory."""
from __future__ import annotations

import json
from typing import BinaryIO, Iterator

from ..note import MAX_NOTE_BYTES
from .common import MAX_LINE_BYTES, VerificationError

MAX_JSON_FILE_BYTES = 64 << 20    # a keys file or a receipt


def _read_bounded(path: str, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror or exc}", where=what) from None
    if len(data) > limit:
        raise VerificationError(f"{path} is larger than {limit} bytes", where=what)
    return data


def read_text(path: str, what: str, limit: int = MAX_NOTE_BYTES) -> str:
    data = _read_bounded(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"{path} is not UTF-8 ({exc.reason} at byte {exc.start})", where=what) from None


def read_json(path: str, what: str) -> object:
    text = read_text(path, what, MAX_JSON_FILE_BYTES)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise VerificationError(f"{path} is not JSON: {exc}", where=what) from None


def read_lines(handle: BinaryIO) -> Iterator[bytes]:
    """Lines of an open binary file, one at a time, none longer than an entry may be."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 2)
        if not line:
            return
        yield line  # an over-long line arrives cut at the limit: check_entry refuses it, naming its seq
        if len(line) > MAX_LINE_BYTES + 1:
            return
