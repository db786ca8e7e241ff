"""What templates share: money in yuan from integer fen, instants in the
programme's time, the navigation of each role, the form token and the
language switch."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import g, request
from flask_babel import get_locale, lazy_gettext as _l
from markupsafe import Markup, escape

from voucher_service.clock import PROGRAMME_TIMEZONE
from voucher_service.console.web import CSRF_FIELD, new_form_key

# Each role's pages, in the order of its work.
NAVIGATION = {
    "sme": [("console.sme_vouchers", _l("Vouchers")), ("console.sme_apply", _l("Apply")),
            ("console.sme_catalogue", _l("Catalogue")), ("console.sme_reservations", _l("Reservations"))],
    "provider": [("console.provider_reservations", _l("Reservations")),
                 ("console.provider_account", _l("Account"))],
    "officer": [("console.officer_applications", _l("Applications")), ("console.officer_claims", _l("Claims")),
                ("console.officer_proposals", _l("Catalogue proposals")),
                ("console.officer_providers", _l("Providers"))],
    "finance": [("console.finance_batches", _l("Batches")), ("console.finance_budget", _l("Budget")),
                ("console.finance_charts", _l("Charts"))],
    "auditor": [("console.auditor_ledger", _l("Ledger")), ("console.auditor_checkpoint", _l("Checkpoint")),
                ("console.auditor_verify", _l("Verify a receipt"))],
}
NAVIGATION["admin"] = NAVIGATION["auditor"]

# The kinds of evidence a claim carries (DESIGN §9), as the provider's upload
# form offers them and the officer's claim page lists them.
DOCUMENT_KINDS = {"contract": _l("Contract"), "invoice": _l("Invoice"), "acceptance": _l("Acceptance record"),
                  "payment_proof": _l("Proof of payment")}

ROLE_NAMES = {"sme": _l("Enterprise"), "provider": _l("Service provider"), "officer": _l("Programme officer"),
              "finance": _l("Finance officer"), "auditor": _l("Auditor"), "admin": _l("Administrator")}
# The states of applications, vouchers, reservations and batches, as a user reads them.
STATUS_NAMES = {
    "submitted": _l("submitted"), "approved": _l("approved"), "rejected": _l("rejected"),
    "active": _l("active"), "issued": _l("issued"), "expired": _l("expired"), "void": _l("void"),
    "voided": _l("voided"), "exhausted": _l("used up"), "reserved": _l("reserved"), "claimed": _l("claimed"),
    "confirmed": _l("confirmed"), "redeemed": _l("redeemed"), "cancelled": _l("cancelled"),
    "settled": _l("settled"), "recovered": _l("recovered"), "draft": _l("draft"), "executed": _l("executed"),
    "completed": _l("completed"), "proposed": _l("proposed"), "withdrawn": _l("withdrawn"),
    "suspended": _l("suspended"), "open": _l("open"), "adopted": _l("adopted"), "paid": _l("paid"),
    "failed": _l("failed"), "pending": _l("pending"),
}


def yuan(amount_fen) -> str:
    """¥1,234.56 from 123456 fen; integers throughout (never a float)."""
    if amount_fen is None:
        return "—"
    amount_fen = int(amount_fen)
    sign = "-" if amount_fen < 0 else ""
    whole, fen = divmod(abs(amount_fen), 100)
    return f"{sign}¥{whole:,}.{fen:02d}"


def percent_bp(basis_points) -> str:
    if basis_points is None:
        return "—"
    whole, rest = divmod(int(basis_points), 100)
    return f"{whole}.{rest:02d}%".replace(".00%", "%")


def _programme_time(moment: str | None) -> datetime | None:
    """The API's RFC 3339 UTC instant in Asia/Shanghai: the programme's time, in
    which its periods, fiscal years and date filters are counted, so a day shown
    is the day an officer filters by (a UTC date is the day before until 08:00)."""
    if not moment:
        return None
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(ZoneInfo(PROGRAMME_TIMEZONE))


def shanghai_time(moment: str | None) -> str:
    """"2026-03-01 08:00" from "2026-03-01T00:00:00.000000Z"."""
    local = _programme_time(moment)
    return local.strftime("%Y-%m-%d %H:%M") if local else (moment or "—")


def shanghai_date(moment: str | None) -> str:
    """"2026-03-01" from "2026-02-28T16:00:00.000000Z"."""
    local = _programme_time(moment)
    return local.strftime("%Y-%m-%d") if local else (moment or "—")


def _csrf_field() -> Markup:
    token = g.console.csrf_token if g.get("console") else ""
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'
                  f'<input type="hidden" name="idempotency_key" value="{new_form_key()}">')


def _context():
    console = g.get("console")
    role = console.principal.role if console else None
    return {"principal": console.principal if console else None,
            "navigation": [(endpoint, label) for endpoint, label in NAVIGATION.get(role, [])
                           if endpoint in _endpoints()],
            "role_names": ROLE_NAMES, "status_names": STATUS_NAMES,
            "lang": str(get_locale() or "zh"), "csrf_field": _csrf_field, "here": request.full_path.rstrip("?")}


def _endpoints() -> set[str]:
    from flask import current_app
    return set(current_app.view_functions)


def init_app(app) -> None:
    app.jinja_env.filters["yuan"] = yuan
    app.jinja_env.filters["percent_bp"] = percent_bp
    app.jinja_env.filters["shanghai_time"] = shanghai_time
    app.jinja_env.filters["shanghai_date"] = shanghai_date
    app.context_processor(lambda: _context() if request.blueprint == "console" else {})
