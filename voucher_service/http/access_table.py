"""Who may call what: for every endpoint, each role allowed to call it and
the binding rule (http/access.py's RULES) it is held to. The table only: the
rules' meaning and their enforcement live in http/access.py.
"""
from __future__ import annotations

from voucher_service.http.auth import ROLES

PUBLIC = "public"

_ALL_READ = {"auditor": "all", "admin": "all"}
_EVERYONE = {role: "any" for role in ROLES}
_OWNED = {"sme": "own", "officer": "own region", "finance": "own region", **_ALL_READ}

POLICY: dict[str, dict[str, str] | str] = {
    "regions.list_regions": _EVERYONE,
    "regions.get_region": _EVERYONE,
    "regions.create_region": {"admin": "any"},
    "regions.adopt_policy": {"officer": "own region in path"},
    "regions.fund_budget": {"finance": "own region in path"},
    "regions.get_budget": {"finance": "own region in path", "officer": "own region in path", **_ALL_READ},
    "catalog.list_items": _EVERYONE,
    "catalog.get_item": _EVERYONE,
    "catalog.list_categories": _EVERYONE,
    # Proposals (DESIGN §8): any officer proposes and approves; governance is open to every token.
    "catalog.create_item": {"officer": "any"},
    "catalog.update_item": {"officer": "any"},
    "catalog.list_proposals": _EVERYONE,
    "catalog.get_proposal": _EVERYONE,
    "catalog.approve_proposal": {"officer": "any"},
    "catalog.withdraw_proposal": {"officer": "proposing region"},
    "providers.list_providers": _EVERYONE,
    "providers.get_provider": _EVERYONE,
    "providers.create_provider": {"officer": "own region in body"},
    "providers.suspend_provider": {"officer": "home region"},
    "providers.reinstate_provider": {"officer": "home region"},
    # A region's exclusions: every principal reads them (where may a voucher be spent?);
    # only that region's officers change them.
    "provider_exclusions.list_excluded_providers": _EVERYONE,
    "provider_exclusions.get_excluded_provider": _EVERYONE,
    "provider_exclusions.exclude_provider": {"officer": "own region in path"},
    "provider_exclusions.readmit_provider": {"officer": "own region in path"},
    # Payout accounts (DESIGN §9): two officers of the home region change one; finance of
    # any region reads it (a batch of any region pays the provider), the provider its own.
    "payout_accounts.get_payout_account": {"provider": "own", "officer": "home region", "finance": "any",
                                           **_ALL_READ},
    "payout_accounts.propose_payout_account": {"officer": "home region"},
    "payout_accounts.confirm_payout_account": {"officer": "home region"},
    # The provider's own view: itself, its home region's officers, auditors and admins.
    "provider_account.get_account": {"provider": "own", "officer": "any", **_ALL_READ},
    "enterprises.list_enterprises": {**_OWNED, "sme": "self"},
    "enterprises.get_enterprise": {**_OWNED, "sme": "self"},
    "enterprises.create_enterprise": {"officer": "own region in body"},
    "applications.submit": {"sme": "self"},
    "applications.list_applications": _OWNED,
    "applications.get_application": _OWNED,
    "applications.approve": {"officer": "issuing region"},
    "applications.reject": {"officer": "issuing region"},
    "vouchers.list_vouchers": _OWNED,
    "vouchers.get_voucher": _OWNED,
    "vouchers.void": {"officer": "issuing region"},
    "vouchers.extend": {"officer": "issuing region"},
    "redemptions.list_redemptions": {"sme": "own", "provider": "own", "officer": "issuing or provider region",
                                     "finance": "issuing or provider region", **_ALL_READ},
    "redemptions.get_redemption": {"sme": "own", "provider": "own", "officer": "issuing or provider region",
                                   "finance": "issuing or provider region", **_ALL_READ},
    "redemptions.reserve": {"sme": "holder"},
    # Evidence (DESIGN §9): the provider uploads; whoever reads the redemption reads its documents.
    "documents.upload": {"provider": "provider of it"},
    # Not finance: DESIGN §9 names the holder, the provider, officers and auditors.
    "documents.list_documents": {"sme": "own", "provider": "own", "officer": "issuing or provider region",
                                 **_ALL_READ},
    "documents.get_document": {"sme": "own", "provider": "own", "officer": "issuing or provider region",
                               **_ALL_READ},
    "redemptions.claim": {"provider": "provider of it"},
    "redemptions.confirm": {"sme": "holder"},
    "redemptions.cancel": {"sme": "holder"},
    "redemptions.approve": {"officer": "issuing region"},
    "redemptions.reject": {"officer": "issuing region"},
    "redemptions.recover": {"officer": "issuing region"},
    "repayments.repay": {"finance": "any"},
    "settlements.create": {"finance": "paying region"},
    "settlements.list_settlements": {"finance": "touched region", **_ALL_READ},
    "settlements.get_settlement": {"finance": "touched region", **_ALL_READ},
    "settlements.payouts": {"finance": "touched region", **_ALL_READ},
    "settlements.approve": {"finance": "touched region"},
    "settlements.execute": {"finance": "paying region"},
    "settlements.cancel": {"finance": "paying region"},
    "settlements.record_results": {"finance": "paying region"},
    "reconciliation.get_statement": {"finance": "own region statement", **_ALL_READ},
    "ledger.checkpoint": PUBLIC,
    "ledger.keys": PUBLIC,
    "ledger.witnesses": PUBLIC,
    "ledger.inclusion": PUBLIC,
    "ledger.consistency": PUBLIC,
    "ledger.entries": {**{role: "concerning it" for role in ("sme", "provider", "officer", "finance")},
                       **_ALL_READ},
    "ledger.entry": {**{role: "concerning it" for role in ("sme", "provider", "officer", "finance")},
                     **_ALL_READ},
    "ledger.receipt": {**{role: "concerning it" for role in ("sme", "provider", "officer", "finance")},
                       **_ALL_READ},
    "ledger.export": dict(_ALL_READ),
    "ledger.beancount": dict(_ALL_READ),
    "reports.programme": PUBLIC,
}

# Fields shown unmasked only to some of those who may call the endpoint: a
# provider's bank account number is for the finance officers who pay it; every
# other reader of the payout file sees it masked (DESIGN §9).
FIELD_POLICY: dict[str, dict[str, str]] = {
    "settlements.payouts:account_no": {"finance": "paying region"},
}

# Outside the versioned API: health, metrics, the OpenAPI document and its docs.
# The web console's pages (DESIGN §11) pass this gate: they do their own
# sign-in, and every read or write they make is an API call with the
# signed-in user's token (console/client.py), held to this table there.
CONSOLE_BLUEPRINT = "console"
UNVERSIONED_PUBLIC = {"health.healthz", "health.readyz", "health.metrics", "api-docs.openapi_json",
                      "api-docs.openapi_swagger_ui", "docs_assets", "static"}

