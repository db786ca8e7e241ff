"""What people type into the SME's and provider's forms: money in yuan, the
subsidy it buys, ids in URLs, and the notice after a write.

A form takes yuan ("1234.5") because that is what an invoice says; the API
takes integer fen. The conversion is text to integer, never through a float:
"0.29" must be 29 fen, not 28.999…. sme.js parses with the same rules so that
the figure shown while typing is the figure the server works out.
"""
from __future__ import annotations

import re

from flask import abort, request
from flask_babel import gettext as _

BASIS_POINTS = 10_000
# Digits, an optional point and at most two decimals; a thousands separator and
# a yuan sign are what people paste from invoices, so they are let through.
_YUAN = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]*))?")
# Ten billion yuan and more is no price in this programme (the API's MAX_FEN is
# 10**12 fen); the bound keeps absurd input from becoming a huge integer.
MAX_WHOLE_DIGITS = 10


class YuanError(ValueError):
    """The amount as typed cannot be read: its message says why, in the user's language."""


def parse_yuan(text: str | None) -> int:
    """Fen from a yuan amount as typed: "12" → 1200, "12.3" → 1230, "1,234.56" → 123456."""
    cleaned = (text or "").strip().replace(",", "").replace("，", "").lstrip("¥￥").strip()
    if not cleaned:
        raise YuanError(_("Enter an amount in yuan."))
    if cleaned.startswith("-"):
        raise YuanError(_("Enter an amount greater than zero."))
    found = _YUAN.fullmatch(cleaned)
    if found is None:
        raise YuanError(_("Enter an amount in yuan, such as 1234.50."))
    whole, fraction = found.group("whole"), found.group("fraction") or ""
    if len(fraction) > 2:
        raise YuanError(_("Enter at most two decimal places: the smallest amount is one fen (0.01)."))
    if len(whole.lstrip("0")) > MAX_WHOLE_DIGITS:
        raise YuanError(_("This amount is far larger than any in the programme."))
    amount_fen = int(whole) * 100 + int(fraction.ljust(2, "0"))
    if amount_fen <= 0:
        raise YuanError(_("Enter an amount greater than zero."))
    return amount_fen


def yuan_text(amount_fen: int | None) -> str:
    """The plain form of an amount for an input field: 123456 → "1234.56"."""
    if amount_fen is None:
        return ""
    whole, fen = divmod(int(amount_fen), 100)
    return f"{whole}.{fen:02d}"


def subsidy_fen(service_fee_fen: int, item_ratio_bp: int, region_ratio_bp: int | None, available_fen: int) -> int:
    """What the voucher may pay towards a service: the fee times the stricter of
    the catalogue item's and the issuing region's ratio, rounded down to the fen
    (never a fen above the ratio), and no more than the voucher has available.
    The API checks the same numbers when it reserves (process/rules.py)."""
    ratio_bp = item_ratio_bp if region_ratio_bp is None else min(item_ratio_bp, region_ratio_bp)
    return max(0, min(service_fee_fen * ratio_bp // BASIS_POINTS, available_fen))


def field_errors(problem: dict | None, names: dict[str, str]) -> dict:
    """The API's errors per field (`amount_fen`) as the form's (`body.amount_yuan`), for the field macro."""
    errors = {}
    for api_name, messages in ((problem or {}).get("errors") or {}).items():
        form_name = names.get(api_name.split(".")[-1])
        if form_name:
            errors.setdefault(f"body.{form_name}", []).extend(messages if isinstance(messages, list) else [messages])
    return errors


# The ids this API hands out (vch_…, rdm_…, ent-ks-001, TS-01): a URL's id is
# one of these before it becomes part of an API path, so that no "?" or "%"
# in it can make the page ask the API for something else.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def checked_id(value: str) -> str:
    if _ID.fullmatch(value or "") is None:
        abort(404)
    return value


def done_notice(notices: dict) -> str | None:
    """The notice of `?done=KEY` after a write: a fixed sentence per key, never text from the URL."""
    return notices.get(request.args.get("done", ""))
