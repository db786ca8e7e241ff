"""Who may call what: the one access model.

Each endpoint maps each role allowed to call it to a *binding rule*: what the
principal's binding (its enterprise, provider or region) must have to do with
the object. This module owns, for every binding rule, both halves of it: the
predicate on a loaded object and the filter on a list query. Views name no
role; they ask this module:

- before the request is parsed, a role not in the endpoint's row is refused
  (401 without a token, 403 with one): `gate`, called by http/api.py;
- `load(kind, id)` loads one object, 404 if it does not exist or the principal
  may not see it (its existence must not leak; "see" is the rule of the kind's
  read endpoint), 403 if it may see it but the endpoint's rule refuses it to act;
- `check(kind, facts)` holds something that is not a secret (a request body's
  region, a region's statement) to the endpoint's rule: 403 if refused;
- `visible(kind, query)` narrows a list query to what the rule lets it see.

An endpoint missing from the table is refused to everyone, and a test fails
until it is added. `python -m voucher_service.http.access` renders docs/access.md.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

from flask import g, request
from flask_smorest import abort
from sqlmodel import or_, select, true

from voucher_service.db import get_session
from voucher_service.http.access_table import CONSOLE_BLUEPRINT, FIELD_POLICY, POLICY, PUBLIC, UNVERSIONED_PUBLIC
from voucher_service.http.auth import ROLES, Principal
from voucher_service.models import (
    Application,
    CatalogProposal,
    Enterprise,
    LedgerEntry,
    LedgerRef,
    Provider,
    Redemption,
    Settlement,
    SettlementLine,
    Voucher,
)



@dataclass(frozen=True)
class Facts:
    """What binding rules read of an object: the region it belongs to (issuing,
    home or paying), its enterprise and provider, and the other regions it
    touches (a redemption's provider region, a batch's payees' regions), and
    the ids it names (a ledger entry's refs)."""
    region: str | None = None
    enterprise_id: str | None = None
    provider_id: str | None = None
    regions_touched: frozenset[str] = frozenset()
    refs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Kind:
    """One kind of object the rules apply to: how to load it, what its facts
    are, and the columns a list filter narrows on."""
    noun: str
    model: type
    read_endpoint: str
    facts: Callable[[object], Facts]
    region: object = None       # column: the object's own region
    enterprise: object = None   # column
    provider: object = None     # column
    touched: Callable[[str], object] | None = None  # region -> clause: the object touches that region
    names: Callable[[str], object] | None = None    # id -> clause: the object names that id


def _provider_region(provider_id: str) -> str | None:
    provider = get_session().get(Provider, provider_id)
    return provider.region if provider else None


def _settlement_regions(settlement: Settlement) -> frozenset[str]:
    lines = get_session().exec(select(SettlementLine.provider_region)
                               .where(SettlementLine.settlement_id == settlement.id)).all()
    return frozenset(lines) | {settlement.region}


def _entry_facts(entry: LedgerEntry) -> Facts:
    refs = frozenset(get_session().exec(select(LedgerRef.ref).where(LedgerRef.seq == entry.seq)).all())
    return Facts(region=entry.region, refs=refs)


def _entries_naming(ref: str | None):
    return LedgerEntry.seq.in_(select(LedgerRef.seq).where(LedgerRef.ref == ref))


KINDS = {
    "catalog_proposal": Kind("catalogue proposal", CatalogProposal, "catalog.get_proposal",
                             lambda p: Facts(region=p.region), region=CatalogProposal.region),
    "provider": Kind("provider", Provider, "providers.get_provider",
                     lambda p: Facts(region=p.region, provider_id=p.id), region=Provider.region,
                     provider=Provider.id),
    "enterprise": Kind("enterprise", Enterprise, "enterprises.get_enterprise",
                       lambda e: Facts(region=e.region, enterprise_id=e.id), region=Enterprise.region,
                       enterprise=Enterprise.id),
    "application": Kind("application", Application, "applications.get_application",
                        lambda a: Facts(region=a.region, enterprise_id=a.enterprise_id), region=Application.region,
                        enterprise=Application.enterprise_id),
    "voucher": Kind("voucher", Voucher, "vouchers.get_voucher",
                    lambda v: Facts(region=v.region, enterprise_id=v.enterprise_id), region=Voucher.region,
                    enterprise=Voucher.enterprise_id),
    "redemption": Kind("redemption", Redemption, "redemptions.get_redemption",
                       lambda r: Facts(region=r.region, enterprise_id=r.enterprise_id, provider_id=r.provider_id,
                                       regions_touched=frozenset({_provider_region(r.provider_id)})),
                       region=Redemption.region, enterprise=Redemption.enterprise_id, provider=Redemption.provider_id,
                       touched=lambda region: Redemption.provider_id.in_(
                           select(Provider.id).where(Provider.region == region))),
    "settlement": Kind("settlement", Settlement, "settlements.get_settlement",
                       lambda s: Facts(region=s.region, regions_touched=_settlement_regions(s)),
                       region=Settlement.region,
                       touched=lambda region: Settlement.id.in_(
                           select(SettlementLine.settlement_id).where(SettlementLine.provider_region == region))),
    "ledger_entry": Kind("ledger entry", LedgerEntry, "ledger.entry", _entry_facts, region=LedgerEntry.region,
                         names=_entries_naming),
}


@dataclass(frozen=True)
class Rule:
    """A binding rule: its wording for people, its predicate on an object's
    facts, and the same predicate as a clause on a list query."""
    text: str
    holds: Callable[[Principal, Facts], bool]
    narrows: Callable[[Principal, Kind], object]


def _everything(_who, _kind):
    return true()


def _own_binding(who: Principal) -> tuple[str, str | None]:
    """What a token is bound to, where the binding is an enterprise or a provider."""
    return ("enterprise", who.enterprise_id) if who.role == "sme" else ("provider", who.provider_id)


def _owns(who: Principal, facts: Facts) -> bool:
    field, bound = _own_binding(who)
    return bound is not None and getattr(facts, f"{field}_id") == bound


def _owned(who: Principal, kind: Kind):
    field, bound = _own_binding(who)
    return getattr(kind, field) == bound


def _in_region(who: Principal, facts: Facts) -> bool:
    return who.region is not None and facts.region == who.region


def _of_region(who: Principal, kind: Kind):
    return kind.region == who.region


def _touches(who: Principal, facts: Facts) -> bool:
    return _in_region(who, facts) or (who.region is not None and who.region in facts.regions_touched)


def _touching(who: Principal, kind: Kind):
    return or_(kind.region == who.region, kind.touched(who.region))


def _concerns(who: Principal, facts: Facts) -> bool:
    # Officers and finance see their region's entries; SMEs and providers the
    # entries that name their enterprise or provider.
    if who.role in ("officer", "finance"):
        return _in_region(who, facts)
    return _own_binding(who)[1] in facts.refs


def _concerning(who: Principal, kind: Kind):
    if who.role in ("officer", "finance"):
        return _of_region(who, kind)
    return kind.names(_own_binding(who)[1])


def _region_rule(text: str) -> Rule:
    return Rule(text, _in_region, _of_region)


def _enterprise_rule(text: str) -> Rule:
    return Rule(text, _owns, _owned)


RULES: dict[str, Rule] = {
    "public": Rule("anyone, without a token", lambda _who, _facts: True, _everything),
    "any": Rule("any principal of this role", lambda _who, _facts: True, _everything),
    "all": Rule("everything (read-only roles)", lambda _who, _facts: True, _everything),
    "self": _enterprise_rule("its own enterprise"),
    "own": Rule("objects of its own enterprise (SME) or provider (provider)", _owns, _owned),
    "own region": _region_rule("objects of its own region"),
    "own region in body": _region_rule("the `region` of the request body must be its own"),
    "own region in path": _region_rule("the region named in the path (`/regions/{code}/…`) must be its own"),
    "home region": _region_rule("the object's home region (a provider's or an enterprise's) must be its own"),
    "issuing region": _region_rule(
        "the region that issued the voucher or received the application must be its own"),
    "issuing or provider region": Rule("the issuing region, or the home region of the provider involved",
                                       _touches, _touching),
    "holder": _enterprise_rule("the enterprise holding the voucher"),
    "provider of it": Rule("the provider the redemption was made with", _owns, _owned),
    "paying region": _region_rule("the region paying the settlement batch"),
    "touched region": Rule("a region the batch pays from or pays to; the batch's creator may not approve it",
                           _touches, _touching),
    "concerning it": Rule("entries whose refs name its enterprise or provider, or of its region (officer, finance)",
                          _concerns, _concerning),
    "own region statement": _region_rule("the statement of its own region"),
    "proposing region": _region_rule("the region that proposed the catalogue change must be its own"),
}

# What a refusal tells the caller it would have needed, per rule.
REFUSALS = {
    "own region in body": "an officer registers in its own region only: `region` must be {who.region}",
    "own region in path": "only the {who.role} principals of {facts.region} may do this",
    "home region": "only an officer of the home region ({facts.region}) may do this",
    "issuing region": "only an officer of the issuing region ({facts.region}) may do this",
    "own": "only the {who.role} principal of it may do this",
    "holder": "only the enterprise holding the voucher may do this",
    "provider of it": "only the provider of the service may do this",
    "paying region": "only a finance officer of the paying region ({facts.region}) may do this",
    "touched region": "only a finance officer of a region the batch touches may do this",
    "proposing region": "only an officer of the proposing region ({facts.region}) may withdraw the proposal",
    "own region statement": "only finance officers of {facts.region}, auditors and administrators read "
                            "{facts.region}'s reconciliation",
}


def principal() -> Principal:
    """The caller; 401 without one (the gate lets only public routes through without)."""
    who = g.get("principal")
    if who is None:
        abort(401, message="a valid bearer token is required")
    return who


def _rule(endpoint: str, who: Principal) -> str | None:
    row = POLICY.get(endpoint)
    if row == PUBLIC:
        return "public"
    return (row or {}).get(who.role)


def _holds(endpoint: str, who: Principal, facts: Facts) -> bool:
    rule = _rule(endpoint, who)
    return rule is not None and RULES[rule].holds(who, facts)


def _refuse(who: Principal, facts: Facts) -> None:
    rule = _rule(request.endpoint, who)
    template = REFUSALS.get(rule, "role '{who.role}' may not do this")
    abort(403, message=template.format(who=who, facts=facts))


def load(kind_name: str, object_id: str, *, facts: Facts | None = None, row=None):
    """The object of `kind_name` with this id, if the caller may see it (else
    404) and act on it at this endpoint (else 403). `row` and `facts` let a hot
    path pass what it has already read instead of the ORM object."""
    who = principal()
    kind = KINDS[kind_name]
    obj = row if row is not None or facts is not None else get_session().get(kind.model, object_id)
    if obj is None and facts is None:
        abort(404, message=f"no {kind.noun} {object_id}")
    facts = facts or kind.facts(obj)
    if not _holds(kind.read_endpoint, who, facts):
        abort(404, message=f"no {kind.noun} {object_id}")
    if request.endpoint != kind.read_endpoint and not _holds(request.endpoint, who, facts):
        _refuse(who, facts)
    return obj


def check(facts: Facts) -> Principal:
    """Hold facts that are no secret (a body's region, a statement's region) to
    this endpoint's rule: 403 if refused. Returns the caller."""
    who = principal()
    if not _holds(request.endpoint, who, facts):
        _refuse(who, facts)
    return who


def may_see(field: str, facts: Facts) -> bool:
    """Whether the caller sees `field` (a FIELD_POLICY key) of an object with these facts unmasked."""
    who = principal()
    rule = FIELD_POLICY[field].get(who.role)
    return rule is not None and RULES[rule].holds(who, facts)


def visible(kind_name: str, query):
    """`query` narrowed to the objects of `kind_name` this endpoint's rule lets the caller see."""
    who = principal()
    rule = _rule(request.endpoint, who)
    if rule is None:
        abort(403, message=f"role '{who.role}' may not do this")
    return query.where(RULES[rule].narrows(who, KINDS[kind_name]))


def is_public(endpoint: str | None) -> bool:
    return (endpoint in UNVERSIONED_PUBLIC or POLICY.get(endpoint) == PUBLIC
            or (endpoint or "").startswith(CONSOLE_BLUEPRINT + "."))


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
        cells = [RULES["public"].text if row == PUBLIC else row.get(role, "—") for role in ROLES]
        lines.append(f"| `{method} {path}` | " + " | ".join(cells) + " |")
    lines += ["", "## Fields shown unmasked to some callers only", ""]
    lines += [f"- `{field}`: " + "; ".join(f"{role}: {rule}" for role, rule in row.items()) + "; everyone else "
              "who may call the endpoint sees it masked" for field, row in FIELD_POLICY.items()]
    lines += ["", "## Binding rules", ""] + [f"- **{name}**: {rule.text}" for name, rule in RULES.items()]
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
