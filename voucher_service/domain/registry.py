"""Regions and their policies, the shared catalogue, providers and enterprises."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import select

from .. import journal, registry_cache
from ..ledger import Posting
from ..models import (CatalogCategory, CatalogItem, Enterprise, EnterpriseRelatedProvider, Policy, Provider,
                      ProviderCategory, Region)
from .context import Context, local_date, new_id, utc_now
from .errors import InvalidInput, NotFound, RuleViolation
from .uscc import uscc_problem


def get_region(ctx: Context, code: str) -> Region:
    region = ctx.session.get(Region, code)
    if region is None:
        raise NotFound("region", f"no region {code}")
    return region


def policy_in_effect(ctx: Context, region_code: str, on: date | None = None) -> Policy:
    on = on or local_date(ctx.now)
    policy = ctx.session.exec(
        select(Policy).where(Policy.region == region_code, Policy.effective_from <= on)
        .order_by(Policy.effective_from.desc())).first()
    if policy is None:
        raise RuleViolation("policy_in_effect", f"policy in effect: region {region_code} has no policy on {on}")
    return policy


def subsidy_ratio_bp_in_effect(ctx: Context, region_code: str, on: date | None = None) -> int:
    """policy_in_effect(...).subsidy_ratio_bp, from the registry cache under the ledger lock."""
    on = on or local_date(ctx.now)

    def load():
        return tuple(ctx.session.connection().execute(
            select(Policy.effective_from, Policy.subsidy_ratio_bp).where(Policy.region == region_code)
            .order_by(Policy.effective_from.desc())).all())
    for effective_from, ratio_bp in registry_cache.cached(ctx.session, "policies", region_code, load):
        if effective_from <= on:
            return ratio_bp
    raise RuleViolation("policy_in_effect", f"policy in effect: region {region_code} has no policy on {on}")


def lock(ctx: Context) -> None:
    """Take the ledger lock, then read the clock: every timestamp the change
    writes (reserved_at, redeemed_at, ...) equals its ledger entry's ts, and
    settlement periods and reconciliation periods agree to the microsecond."""
    journal.lock_ledger(ctx.session)
    ctx.now = utc_now()


def _append(ctx: Context, **kw):
    row = journal.append(ctx.session, ctx.signer, actor=ctx.actor, ts=ctx.now_str, **kw)
    ctx.appended.append(row)
    return row


def policy_json(p: Policy) -> dict:
    return {"effective_from": p.effective_from.isoformat(), "enterprise_cap_fen": p.enterprise_cap_fen,
            "team_cap_fen": p.team_cap_fen, "subsidy_ratio_bp": p.subsidy_ratio_bp,
            "validity_days": p.validity_days, "payout_cycle": p.payout_cycle, "budget_fen": p.budget_fen}


def register_region(ctx: Context, *, code, name_zh, name_en, currency, timezone) -> Region:
    lock(ctx)
    region = Region(code=code, name_zh=name_zh, name_en=name_en, currency=currency, timezone=timezone,
                    created_at=ctx.now_str)
    ctx.session.add(region)
    ctx.session.flush()
    _append(ctx, kind="region.registered", region=code, refs={"region": code},
            data={"name_zh": name_zh, "name_en": name_en, "currency": currency, "timezone": timezone})
    return region


def adopt_policy(ctx: Context, region_code: str, **fields) -> Policy:
    lock(ctx)
    policy = Policy(region=region_code, **fields)
    ctx.session.add(policy)
    ctx.session.flush()
    _append(ctx, kind="policy.adopted", region=region_code, refs={"region": region_code},
            data=policy_json(policy))
    return policy


def fund_budget(ctx: Context, region_code: str, amount_fen: int) -> None:
    lock(ctx)
    _append(ctx, kind="budget.funded", region=region_code, refs={"region": region_code},
            postings=[Posting(f"treasury:{region_code}", f"budget:{region_code}", amount_fen)],
            data={"amount_fen": amount_fen})


def budget_remaining_fen(ctx: Context, region_code: str) -> int:
    return journal.account_balance(ctx.session, f"budget:{region_code}")


# --- catalogue -------------------------------------------------------------

def add_category(ctx: Context, *, code, name_zh, name_en, region) -> CatalogCategory:
    lock(ctx)
    category = CatalogCategory(code=code, name_zh=name_zh, name_en=name_en)
    ctx.session.add(category)
    ctx.session.flush()
    _append(ctx, kind="catalog.category_added", region=region, refs={"category": code},
            data={"code": code, "name_zh": name_zh, "name_en": name_en})
    return category


def catalog_item_json(item: CatalogItem) -> dict:
    return {"code": item.code, "category": item.category, "name_zh": item.name_zh, "name_en": item.name_en,
            "max_subsidy_ratio_bp": item.max_subsidy_ratio_bp, "active": item.active}


def add_catalog_item(ctx: Context, *, region, code, category, name_zh, name_en, max_subsidy_ratio_bp,
                     active=True) -> CatalogItem:
    lock(ctx)
    if ctx.session.get(CatalogCategory, category) is None:
        raise InvalidInput("category", f"unknown category '{category}'")
    if ctx.session.get(CatalogItem, code) is not None:
        raise RuleViolation("catalog_code_unique", f"catalogue code unique: item {code} already exists")
    item = CatalogItem(code=code, category=category, name_zh=name_zh, name_en=name_en,
                       max_subsidy_ratio_bp=max_subsidy_ratio_bp, active=active,
                       created_at=ctx.now_str, updated_at=ctx.now_str)
    ctx.session.add(item)
    ctx.session.flush()
    _append(ctx, kind="catalog.item_added", region=region, refs={"catalog_item": code},
            data=catalog_item_json(item))
    return item


@dataclass(frozen=True)
class CatalogFacts:
    """What the rules of spending a voucher read of a catalogue item."""
    code: str
    category: str
    active: bool
    max_subsidy_ratio_bp: int


def catalog_facts(ctx: Context, code: str) -> CatalogFacts:
    def load():
        row = ctx.session.connection().execute(
            select(CatalogItem.code, CatalogItem.category, CatalogItem.active, CatalogItem.max_subsidy_ratio_bp)
            .where(CatalogItem.code == code)).first()
        return None if row is None else CatalogFacts(row.code, row.category, bool(row.active),
                                                     row.max_subsidy_ratio_bp)
    facts = registry_cache.cached(ctx.session, "catalog_item", code, load)
    if facts is None:
        raise NotFound("catalog_item", f"no catalogue item {code}")
    return facts


def get_catalog_item(ctx: Context, code: str) -> CatalogItem:
    item = ctx.session.get(CatalogItem, code)
    if item is None:
        raise NotFound("catalog_item", f"no catalogue item {code}")
    return item


def update_catalog_item(ctx: Context, code: str, *, region: str, changes: dict) -> CatalogItem:
    lock(ctx)
    item = get_catalog_item(ctx, code)
    if "category" in changes and ctx.session.get(CatalogCategory, changes["category"]) is None:
        raise InvalidInput("category", f"unknown category '{changes['category']}'")
    before = catalog_item_json(item)
    for field_name, value in changes.items():
        setattr(item, field_name, value)
    after = catalog_item_json(item)
    if before == after:
        return item  # nothing changed: no state change, no entry
    item.updated_at = ctx.now_str
    ctx.session.add(item)
    ctx.session.flush()
    _append(ctx, kind="catalog.item_updated", region=region, refs={"catalog_item": code},
            data={"before": {k: v for k, v in before.items() if after[k] != v},
                  "after": {k: v for k, v in after.items() if before[k] != v}})
    return item


# --- providers and enterprises ---------------------------------------------

def _check_uscc(uscc: str) -> None:
    problem = uscc_problem(uscc)
    if problem:
        raise InvalidInput("uscc", f"invalid unified social credit code: {problem}")


def provider_categories(ctx: Context, provider_id: str) -> list[str]:
    # Plain values through the connection: read under the ledger lock by every reservation.
    return list(ctx.session.connection().execute(
        select(ProviderCategory.category).where(ProviderCategory.provider_id == provider_id)
        .order_by(ProviderCategory.category)).scalars())


def register_provider(ctx: Context, *, name, uscc, region, categories, provider_id=None,
                      status="active") -> Provider:
    lock(ctx)
    _check_uscc(uscc)
    get_region(ctx, region)
    categories = sorted(set(categories))
    for category in categories:
        if ctx.session.get(CatalogCategory, category) is None:
            raise InvalidInput("categories", f"unknown category '{category}'")
    if ctx.session.exec(select(Provider).where(Provider.uscc == uscc)).first() is not None:
        raise RuleViolation("uscc_unique", f"USCC unique: a provider with USCC {uscc} is already registered")
    provider = Provider(id=provider_id or new_id("prv"), name=name, uscc=uscc, region=region, status=status,
                        created_at=ctx.now_str, updated_at=ctx.now_str)
    ctx.session.add(provider)
    ctx.session.flush()
    for category in categories:
        ctx.session.add(ProviderCategory(provider_id=provider.id, category=category))
    _append(ctx, kind="provider.registered", region=region, refs={"provider": provider.id},
            data={"name": name, "uscc": uscc, "categories": categories, "status": status})
    return provider


@dataclass(frozen=True)
class ProviderFacts:
    """What the rules of spending a voucher read of a provider."""
    id: str
    region: str
    status: str
    categories: frozenset[str]


def provider_facts(ctx: Context, provider_id: str) -> ProviderFacts:
    def load():
        row = ctx.session.connection().execute(
            select(Provider.id, Provider.region, Provider.status).where(Provider.id == provider_id)).first()
        if row is None:
            return None
        return ProviderFacts(row.id, row.region, row.status, frozenset(provider_categories(ctx, provider_id)))
    facts = registry_cache.cached(ctx.session, "provider", provider_id, load)
    if facts is None:
        raise NotFound("provider", f"no provider {provider_id}")
    return facts


def get_provider(ctx: Context, provider_id: str) -> Provider:
    provider = ctx.session.get(Provider, provider_id)
    if provider is None:
        raise NotFound("provider", f"no provider {provider_id}")
    return provider


def set_provider_status(ctx: Context, provider_id: str, status: str) -> Provider:
    lock(ctx)
    provider = get_provider(ctx, provider_id)
    if provider.status == status:
        verb = "suspended" if status == "suspended" else "active"
        raise RuleViolation("state_machine", f"state machine: provider {provider_id} is already {verb}")
    provider.status = status
    provider.updated_at = ctx.now_str
    ctx.session.add(provider)
    ctx.session.flush()
    kind = "provider.suspended" if status == "suspended" else "provider.reinstated"
    _append(ctx, kind=kind, region=provider.region, refs={"provider": provider.id}, data={"status": status})
    return provider


def related_provider_ids(ctx: Context, enterprise_id: str) -> list[str]:
    return list(ctx.session.connection().execute(
        select(EnterpriseRelatedProvider.provider_id)
        .where(EnterpriseRelatedProvider.enterprise_id == enterprise_id)
        .order_by(EnterpriseRelatedProvider.provider_id)).scalars())


def related_provider_set(ctx: Context, enterprise_id: str) -> frozenset[str]:
    """related_provider_ids as a set, from the registry cache under the ledger lock."""
    return registry_cache.cached(ctx.session, "related_providers", enterprise_id,
                                 lambda: frozenset(related_provider_ids(ctx, enterprise_id)))


def register_enterprise(ctx: Context, *, name, uscc, region, kind, related_provider_ids=(),
                        enterprise_id=None) -> Enterprise:
    lock(ctx)
    _check_uscc(uscc)
    get_region(ctx, region)
    related = sorted(set(related_provider_ids))
    for provider_id in related:
        if ctx.session.get(Provider, provider_id) is None:
            raise InvalidInput("related_provider_ids", f"unknown provider '{provider_id}'")
    if ctx.session.exec(select(Enterprise).where(Enterprise.uscc == uscc)).first() is not None:
        raise RuleViolation("uscc_unique", f"USCC unique: an enterprise with USCC {uscc} is already registered")
    enterprise = Enterprise(id=enterprise_id or new_id("ent"), name=name, uscc=uscc, region=region, kind=kind,
                            created_at=ctx.now_str)
    ctx.session.add(enterprise)
    ctx.session.flush()
    for provider_id in related:
        ctx.session.add(EnterpriseRelatedProvider(enterprise_id=enterprise.id, provider_id=provider_id))
    _append(ctx, kind="enterprise.registered", region=region, refs={"enterprise": enterprise.id},
            data={"name": name, "uscc": uscc, "kind": kind, "related_provider_ids": related})
    return enterprise


def get_enterprise(ctx: Context, enterprise_id: str) -> Enterprise:
    enterprise = ctx.session.get(Enterprise, enterprise_id)
    if enterprise is None:
        raise NotFound("enterprise", f"no enterprise {enterprise_id}")
    return enterprise
