"""Who may call what: the access policy as one table.

Each endpoint maps each role allowed to call it to a *binding rule*: what the
principal's binding (its enterprise, provider or region) must have to do with
the object. The table is enforced in two places:

- before the request is parsed, a role not in the endpoint's row is refused
  (401 without a token, 403 with one): `gate` below;
- the binding rule is checked by the view once the object is loaded (404 where
  the object's existence must not leak, 403 where the principal may see it
  but not act), in the api package.

An endpoint missing from the table is refused to everyone, and a test fails
until it is added. `python -m voucher_service.http.access` renders docs/access.md.
"""
from __future__ import annotations

import sys

ROLES = ("sme", "provider", "officer", "finance", "auditor", "admin")
PUBLIC = "public"

# Binding rules, as the documentation states them.
RULES = {
    "public": "anyone, without a token",
    "any": "any principal of this role",
    "all": "everything (read-only roles)",
    "self": "its own enterprise",
    "own": "objects of its own enterprise (SME) or provider (provider)",
    "own region": "objects of its own region",
    "own region in body": "the `region` of the request body must be its own",
    "home region": "the object's home region (a provider's or an enterprise's) must be its own",
    "issuing region": "the region that issued the voucher or received the application must be its own",
    "issuing or provider region": "the issuing region, or the home region of the provider involved",
    "holder": "the enterprise holding the voucher",
    "provider of it": "the provider the redemption was made with",
    "paying region": "the region paying the settlement batch",
    "touched region": "a region the batch pays from or pays to; the batch's creator may not approve it",
    "concerning it": "entries whose refs name its enterprise or provider, or of its region (officer, finance)",
    "own region statement": "the statement of its own region",
}

_ALL_READ = {"auditor": "all", "admin": "all"}
_EVERYONE = {role: "any" for role in ROLES}
_OWNED = {"sme": "own", "officer": "own region", "finance": "own region", **_ALL_READ}

POLICY: dict[str, dict[str, str] | str] = {
    "regions.list_regions": _EVERYONE,
    "regions.get_region": _EVERYONE,
    "catalog.list_items": _EVERYONE,
    "catalog.get_item": _EVERYONE,
    "catalog.create_item": {"officer": "any"},
    "catalog.update_item": {"officer": "any"},
    "providers.list_providers": _EVERYONE,
    "providers.get_provider": _EVERYONE,
    "providers.create_provider": {"officer": "own region in body"},
    "providers.suspend_provider": {"officer": "home region"},
    "providers.reinstate_provider": {"officer": "home region"},
    "enterprises.list_enterprises": {**_OWNED, "sme": "self"},
    "enterprises.get_enterprise": {**_OWNED, "sme": "self"},
    "enterprises.create_enterprise": {"officer": "own region in body"},
    "applications.submit": {"sme": "self"},
    "applications.get_application": _OWNED,
    "applications.approve": {"officer": "issuing region"},
    "applications.reject": {"officer": "issuing region"},
    "vouchers.list_vouchers": _OWNED,
    "vouchers.get_voucher": _OWNED,
    "vouchers.void": {"officer": "issuing region"},
    "redemptions.list_redemptions": {"sme": "own", "provider": "own", "officer": "issuing or provider region",
                                     "finance": "issuing or provider region", **_ALL_READ},
    "redemptions.get_redemption": {"sme": "own", "provider": "own", "officer": "issuing or provider region",
                                   "finance": "issuing or provider region", **_ALL_READ},
    "redemptions.reserve": {"sme": "holder"},
    "redemptions.claim": {"provider": "provider of it"},
    "redemptions.confirm": {"sme": "holder"},
    "redemptions.cancel": {"sme": "holder"},
    "redemptions.approve": {"officer": "issuing region"},
    "redemptions.reject": {"officer": "issuing region"},
    "settlements.create": {"finance": "paying region"},
    "settlements.list_settlements": {"finance": "touched region", **_ALL_READ},
    "settlements.get_settlement": {"finance": "touched region", **_ALL_READ},
    "settlements.payouts": {"finance": "touched region", **_ALL_READ},
    "settlements.approve": {"finance": "touched region"},
    "settlements.execute": {"finance": "paying region"},
    "settlements.cancel": {"finance": "paying region"},
    "reconciliation.get_statement": {"finance": "own region statement", **_ALL_READ},
    "ledger.checkpoint": PUBLIC,
    "ledger.keys": PUBLIC,
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
}

# Outside the versioned API: health, metrics, the OpenAPI document and its docs.
UNVERSIONED_PUBLIC = {"health.healthz", "health.readyz", "health.metrics", "api-docs.openapi_json",
                      "api-docs.openapi_swagger_ui", "docs_assets", "static"}


def is_public(endpoint: str | None) -> bool:
    return endpoint in UNVERSIONED_PUBLIC or POLICY.get(endpoint) == PUBLIC


def allowed_roles(endpoint: str) -> set[str]:
    row = POLICY.get(endpoint)
    return set(row) if isinstance(row, dict) else set()


def gate(endpoint: str | None, principal) -> tuple[int, str] | None:
    """None if the call may go on to the view; else (status, reason)."""
    if endpoint is None or is_public(endpoint):
        return None
    if principal is None:
        return 401, "a valid bearer token is required"
    if endpoint not in POLICY:
        return 403, "this route has no access policy: refused to everyone"
    if principal.role not in allowed_roles(endpoint):
        return 403, f"role '{principal.role}' may not call {endpoint}"
    return None


def render_markdown(routes: dict[str, tuple[str, str]]) -> str:
    """docs/access.md: `routes` maps endpoint to (method, path)."""
    lines = ["# Access policy", "",
             "Generated from `voucher_service/http/access.py` by `python -m voucher_service.http.access`; "
             "a test fails when this page and the code disagree.", "",
             "A role not listed for a route is refused before the request is read (401 without a token, "
             "403 with one). A listed role is then held to its binding rule: 404 where it may not know the "
             "object exists, 403 where it may see the object but not act on it.", "",
             "| method and path | " + " | ".join(ROLES) + " |", "|---|" + "---|" * len(ROLES)]
    for endpoint in sorted(POLICY, key=lambda e: (routes[e][1], routes[e][0])):
        method, path = routes[endpoint]
        row = POLICY[endpoint]
        cells = [RULES["public"] if row == PUBLIC else row.get(role, "—") for role in ROLES]
        lines.append(f"| `{method} {path}` | " + " | ".join(cells) + " |")
    lines += ["", "## Binding rules", ""] + [f"- **{name}**: {text}" for name, text in RULES.items()]
    lines += ["", "Unversioned and public: " + ", ".join(f"`{e}`" for e in sorted(UNVERSIONED_PUBLIC)) + "."]
    return "\n".join(lines) + "\n"


def api_routes(app) -> dict[str, tuple[str, str]]:
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNVERSIONED_PUBLIC:
            continue
        method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        path = rule.rule.replace("<string:", "{").replace("<int:", "{").replace(">", "}")
        routes[rule.endpoint] = (method, path)
    return routes


def main() -> None:
    from voucher_service import create_app
    app = create_app({"DATABASE_URL": "sqlite://", "VOUCHERS_KEY_PASSPHRASE": ""})
    sys.stdout.write(render_markdown(api_routes(app)))


if __name__ == "__main__":
    main()
