"""What people type into the console's forms and what the pages say back: money
in yuan, the subsidy it buys, ids in URLs, a refusal shown beside its field,
and the notice after a write. Every role's pages use these, so that an amount
typed on one page means what it means on every other.

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
# Digits, an optional point and at most two decimals ("12." is 12 yuan). A yuan
# sign and thousands separators are what people paste from invoices and from
# these pages, so they are let through, but only in threes: "1,00" may be
# someone's decimal comma, and is refused, not guessed.
_YUAN = re.compile(r"(?P<whole>[0-9]{1,3}(?:[,，][0-9]{3})+|[0-9]+)(?:\.(?P<fraction>[0-9]*))?")
# The API's largest amount is 10**12 fen, ten billion yuan (http/common.py
# MAX_FEN): more whole digits than that is a slip, not a price or a budget.
MAX_WHOLE_DIGITS = 10


class YuanError(ValueError):
    """The amount as typed cannot be read: its message says why, in the user's language."""


def parse_yuan(text: str | None) -> int:
    """Fen from a yuan amount as typed: "12" → 1200, "12.3" → 1230, "¥1,234.56" → 123456."""
    cleaned = (text or "").strip()
    cleaned = (cleaned[1:] if cleaned[:1] in ("¥", "￥") else cleaned).strip()
    if not cleaned:
        raise YuanError(_("Enter an amount in yuan."))
    if cleaned.startswith("-"):
        raise YuanError(_("The amount must be more than zero."))
    found = _YUAN.fullmatch(cleaned)
    if found is None:
        raise YuanError(_("Enter an amount in yuan with at most two decimals, e.g. 1234.50."))
    whole, fraction = re.sub("[,，]", "", found.group("whole")), found.group("fraction") or ""
    if len(fraction) > 2:
        raise YuanError(_("Enter at most two decimals: the smallest amount is one fen (0.01)."))
    if len(whole.lstrip("0")) > MAX_WHOLE_DIGITS:
        raise YuanError(_("This amount is far larger than any in the programme."))
    amount_fen = int(whole) * 100 + int(fraction.ljust(2, "0"))
    if amount_fen <= 0:
        raise YuanError(_("The amount must be more than zero."))
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


def field_errors(problem: dict | None, renames: dict[str, str] | None = None) -> dict:
    """The problem's per-field messages keyed as the form macros look them up
    (`body.<field>`); `renames` maps an API field to the form's input (amount_fen
    → amount_yuan), so the message sits beside what the user typed."""
    errors = (problem or {}).get("errors")
    if not isinstance(errors, dict):
        return {}
    renames = renames or {}
    found: dict[str, list] = {}
    for name, messages in errors.items():
        name = name.removeprefix("body.").removeprefix("json.")
        found.setdefault(f"body.{renames.get(name, name)}", []).extend(
            messages if isinstance(messages, list) else [str(messages)])
    return found


def form_problem(errors: dict[str, str]) -> dict:
    """A form the page refuses before any call (`{"body.amount_yuan": why}`),
    shaped as the API's 422 so the page shows it the same way."""
    return {"title": _("Check the form"), "detail": _("Some fields need correcting."),
            "errors": {name: [message] for name, message in errors.items()}}


# The ids this API hands out (vch_…, rdm_…, ent-ks-001, TS-01): a URL's id is
# one of these before it becomes part of an API path, so that no "?" or "%"
# in it can make the page ask the API for something else.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def is_id(value: str | None) -> bool:
    return _ID.fullmatch(value or "") is not None


def checked_id(value: str) -> str:
    """An id from a URL, or the page is not found."""
    if not is_id(value):
        abort(404)
    return value


def done_notice(notices: dict) -> str | None:
    """The notice of `?done=KEY` after a write: a fixed sentence per key, never text from the URL."""
    text = notices.get(request.args.get("done", ""))
    return str(text) if text is not None else None
