"""SMEs: enterprises and start-up teams, and the providers they are related to."""
from __future__ import annotations

from sqlmodel import select

from voucher_service.clock import new_id
from voucher_service.journal import reference_cache as registry_cache
from voucher_service.models import Enterprise, EnterpriseRelatedProvider, Provider
from voucher_service.programme.context import Context
from voucher_service.enterprises.rules import check_uscc_unique
from voucher_service.programme.errors import InvalidInput
from voucher_service.programme.regions import get_region
from voucher_service.programme.writes import append, lock
from voucher_service.providers.service import check_uscc


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
    check_uscc(uscc)
    get_region(ctx, region)
    related = sorted(set(related_provider_ids))
    for provider_id in related:
        if ctx.session.get(Provider, provider_id) is None:
            raise InvalidInput("related_provider_ids", f"unknown provider '{provider_id}'")
    check_uscc_unique(ctx.session.exec(select(Enterprise).where(Enterprise.uscc == uscc)).first() is not None, uscc)
    enterprise = Enterprise(id=enterprise_id or new_id("ent"), name=name, uscc=uscc, region=region, kind=kind,
                            created_at=ctx.now_str)
    ctx.session.add(enterprise)
    ctx.session.flush()
    for provider_id in related:
        ctx.session.add(EnterpriseRelatedProvider(enterprise_id=enterprise.id, provider_id=provider_id))
    # Flushed now: the response reads the related providers through the connection, not the ORM.
    ctx.session.flush()
    append(ctx, kind="enterprise.registered", region=region, refs={"enterprise": enterprise.id},
            data={"name": name, "uscc": uscc, "kind": kind, "related_provider_ids": related})
    return enterprise


def get_enterprise(ctx: Context, enterprise_id: str) -> Enterprise:
    return ctx.get(Enterprise, enterprise_id, "enterprise")
