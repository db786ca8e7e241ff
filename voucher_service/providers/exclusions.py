"""A region's exclusion of a provider for the vouchers it issues (DESIGN §8).

A provider is registered by its home region and recognised in every region;
only the home region suspends it, scheme-wide. Any other region may refuse it
for its *own* vouchers: a reservation of a voucher issued by the excluding
region at the provider is 409 `provider_excluded` (process/redemptions.py reads
the exclusions through the registry cache, with the provider's other facts).
Readmission lifts the exclusion; the row goes, the ledger keeps both events.
"""
from __future__ import annotations

from sqlmodel import select

from voucher_service.models import Provider, ProviderExclusion
from voucher_service.programme.context import Context
from voucher_service.programme.errors import NotFound
from voucher_service.programme.regions import get_region
from voucher_service.programme.writes import append, lock
from voucher_service.providers.rules import check_not_already_excluded, check_not_home_region


def regions_excluding(ctx: Context, provider_id: str) -> frozenset[str]:
    """The regions excluding this provider. Plain values through the connection:
    read under the ledger lock by every reservation (providers.service.provider_facts)."""
    return frozenset(ctx.session.connection().execute(
        select(ProviderExclusion.region).where(ProviderExclusion.provider_id == provider_id)).scalars())


def excluded_in(ctx: Context, provider_ids: list[str]) -> dict[str, list[str]]:
    """For each provider, the codes of the regions excluding it, sorted (one query for a page)."""
    found: dict[str, list[str]] = {provider_id: [] for provider_id in provider_ids}
    if provider_ids:
        for region, provider_id in ctx.session.connection().execute(
                select(ProviderExclusion.region, ProviderExclusion.provider_id)
                .where(ProviderExclusion.provider_id.in_(provider_ids)).order_by(ProviderExclusion.region)):
            found[provider_id].append(region)
    return found


def exclusions_of(ctx: Context, region: str):
    """The query of `region`'s exclusions (404 for an unknown region), for the view to page."""
    get_region(ctx, region)
    return select(ProviderExclusion).where(ProviderExclusion.region == region)


def get_exclusion(ctx: Context, region: str, provider_id: str) -> ProviderExclusion:
    exclusion = ctx.session.get(ProviderExclusion, (region, provider_id))
    if exclusion is None:
        get_region(ctx, region)
        raise NotFound("exclusion", f"{region} does not exclude provider {provider_id}")
    return exclusion


def exclude_provider(ctx: Context, *, region: str, provider_id: str, reason: str) -> ProviderExclusion:
    lock(ctx)
    get_region(ctx, region)
    provider = ctx.get(Provider, provider_id, "provider")
    check_not_home_region(provider.region, region, provider_id)
    check_not_already_excluded(ctx.session.get(ProviderExclusion, (region, provider_id)) is not None,
                               region, provider_id)
    exclusion = ProviderExclusion(region=region, provider_id=provider_id, reason=reason, excluded_by=ctx.actor,
                                  excluded_at=ctx.now_str)
    ctx.session.add(exclusion)
    ctx.session.flush()
    append(ctx, kind="provider.excluded", region=region, refs={"provider": provider_id, "region": region},
           data={"reason": reason})
    return exclusion


def readmit_provider(ctx: Context, *, region: str, provider_id: str) -> ProviderExclusion:
    """Lifts the exclusion; returns it as it stood (the row itself is deleted)."""
    lock(ctx)
    exclusion = get_exclusion(ctx, region, provider_id)
    ctx.session.delete(exclusion)
    ctx.session.flush()
    append(ctx, kind="provider.readmitted", region=region, refs={"provider": provider_id, "region": region},
           data={"excluded_at": exclusion.excluded_at, "excluded_by": exclusion.excluded_by})
    return exclusion
