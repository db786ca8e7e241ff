"""The shared, mutually recognised provider registry (服务机构统一)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from voucher_service.clock import new_id
from voucher_service.journal import reference_cache as registry_cache
from voucher_service.models import CatalogCategory, Provider, ProviderCategory
from voucher_service.programme.context import Context
from voucher_service.programme.errors import InvalidInput, NotFound
from voucher_service.programme.regions import get_region
from voucher_service.programme.writes import append, lock
from voucher_service.providers.exclusions import regions_excluding
from voucher_service.providers.rules import check_provider_status_change, check_uscc_unique
from voucher_service.providers.uscc import uscc_problem


def check_uscc(uscc: str) -> None:
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
    check_uscc(uscc)
    get_region(ctx, region)
    categories = sorted(set(categories))
    for category in categories:
        if ctx.session.get(CatalogCategory, category) is None:
            raise InvalidInput("categories", f"unknown category '{category}'")
    check_uscc_unique(ctx.session.exec(select(Provider).where(Provider.uscc == uscc)).first() is not None, uscc)
    provider = Provider(id=provider_id or new_id("prv"), name=name, uscc=uscc, region=region, status=status,
                        created_at=ctx.now_str, updated_at=ctx.now_str)
    ctx.session.add(provider)
    ctx.session.flush()
    for category in categories:
        ctx.session.add(ProviderCategory(provider_id=provider.id, category=category))
    # Flushed now: the response reads the categories through the connection, not the ORM.
    ctx.session.flush()
    append(ctx, kind="provider.registered", region=region, refs={"provider": provider.id},
            data={"name": name, "uscc": uscc, "categories": categories, "status": status})
    return provider


@dataclass(frozen=True)
class ProviderFacts:
    """What the rules of spending a voucher read of a provider."""
    id: str
    region: str
    status: str
    categories: frozenset[str]
    excluded_in: frozenset[str]  # regions whose vouchers may not be spent here (providers/exclusions.py)


def provider_facts(ctx: Context, provider_id: str) -> ProviderFacts:
    def load():
        row = ctx.session.connection().execute(
            select(Provider.id, Provider.region, Provider.status).where(Provider.id == provider_id)).first()
        if row is None:
            return None
        return ProviderFacts(row.id, row.region, row.status, frozenset(provider_categories(ctx, provider_id)),
                             regions_excluding(ctx, provider_id))
    facts = registry_cache.cached(ctx.session, "provider", provider_id, load)
    if facts is None:
        raise NotFound("provider", f"no provider {provider_id}")
    return facts


def get_provider(ctx: Context, provider_id: str) -> Provider:
    return ctx.get(Provider, provider_id, "provider")


def set_provider_status(ctx: Context, provider_id: str, status: str) -> Provider:
    lock(ctx)
    provider = get_provider(ctx, provider_id)
    check_provider_status_change(provider_id, provider.status, status)
    provider.status = status
    provider.updated_at = ctx.now_str
    ctx.session.add(provider)
    ctx.session.flush()
    kind = "provider.suspended" if status == "suspended" else "provider.reinstated"
    append(ctx, kind=kind, region=provider.region, refs={"provider": provider.id}, data={"status": status})
    return provider
