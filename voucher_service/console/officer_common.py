"""What the officer's pages share: ratios typed by people, the refusal of a
write shown on its form, and the notices after one (amounts, field errors and
the notice mechanism are every role's: form_input.py).

Everything a page shows or changes is still an API call (console/web.py); this
module only turns form text into API bodies and API answers into page context.
"""
from __future__ import annotations

import re

from flask import abort, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from voucher_service.console.form_input import done_notice, field_errors
from voucher_service.console.web import api, principal

OFFICER = "officer"
PAGE_SIZE = 20
_PERCENT = re.compile(r"(\d{1,3})(?:\.(\d{1,2}))?")

# Shown after a successful write: the URL names a key, never free text.
NOTICES = {
    "approved": _l("The application is approved and its voucher is issued."),
    "rejected": _l("The application is rejected."),
    "claim_approved": _l("The claim is approved: the redemption is redeemed and the provider is owed the amount."),
    "claim_rejected": _l("The claim is rejected and its hold released to the voucher."),
    "recovered": _l("The recovery is recorded."),
    "proposed": _l("The change is proposed. It takes effect once officers of enough regions approve it."),
    "proposal_approved": _l("Your region's approval is recorded."),
    "proposal_adopted": _l("Your region's approval completed the quorum: the change is in effect."),
    "withdrawn": _l("The proposal is withdrawn."),
    "registered": _l("The provider is registered."),
    "suspended": _l("The provider is suspended in every region."),
    "reinstated": _l("The provider is reinstated."),
    "excluded": _l("Your region's vouchers can no longer be spent at this provider."),
    "readmitted": _l("Your region's vouchers can be spent at this provider again."),
    "account_proposed": _l("The payout account change is proposed. Another officer of your region must confirm it."),
    "account_confirmed": _l("The payout account change is confirmed and in effect."),
}


def parse_percent_bp(text: str | None) -> tuple[int | None, str | None]:
    """Basis points from a percentage with at most two decimals (37.5 → 3750)."""
    text = (text or "").strip().rstrip("%").strip()
    if not text:
        return None, None
    found = _PERCENT.fullmatch(text)
    if found is None:
        return None, _("Enter a percentage with at most two decimals, e.g. 50 or 37.5.")
    basis_points = int(found.group(1)) * 100 + int((found.group(2) or "").ljust(2, "0"))
    if not 0 < basis_points <= 10_000:
        return None, _("The percentage must be more than 0 and at most 100.")
    return basis_points, None


def notice() -> str | None:
    return done_notice(NOTICES)


def done(endpoint: str, key: str, **values):
    """After a write: to the object's page, saying what happened (303: the browser GETs it)."""
    assert key in NOTICES, key
    return redirect(url_for(endpoint, done=key, **values), 303)


def refused(template: str, problem: dict, status: int, *, renames: dict[str, str] | None = None, **context):
    """The page again after a refused write: the API's status and problem, what was typed kept."""
    return render_template(template, problem=problem, errors=field_errors(problem, renames), **context), status


def load_or_refuse(path: str, answer=None):
    """An object the page is about. If it cannot be read, the refusal of `answer`
    (the write that was tried) is the page's answer when given, else the read's."""
    read = api("GET", path)
    if read.ok:
        return read.data
    refused = answer if answer is not None and not answer.ok else read
    abort(refused.status, description=refused.problem)


def my_region() -> str:
    return principal().region


def every_item(path: str, **query) -> list[dict]:
    """All items of a short list (the catalogue, the regions), page by page, at most 10 pages."""
    items, cursor = [], None
    for _page in range(10):
        answer = api("GET", path, query={**query, "limit": 100, **({"cursor": cursor} if cursor else {})})
        if not answer.ok:
            abort(answer.status, description=answer.problem)
        data = answer.data
        if isinstance(data, list):
            return data
        items.extend(data["items"])
        cursor = data.get("next_cursor")
        if not cursor:
            break
    return items
