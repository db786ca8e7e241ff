"""Member regions and their policies, versioned by effective date."""
from __future__ import annotations

from datetime import date

from sqlmodel import select

from voucher_service.clock import PROGRAMME_TIMEZONE, local_date
from voucher_service.journal import reference_cache as registry_cache
from voucher_service.models import Policy, Region
from voucher_service.programme.context import Context
from voucher_service.programme.errors import InvalidInput
from voucher_service.programme import budgets
from voucher_service.programme.rules import (
    check_policy_date_free,
    check_policy_in_effect,
    check_policy_not_retroactive,
    check_region_code_free,
)
from voucher_service.programme.writes import append, lock


def get_region(ctx: Context, code: str) -> Region:
    return ctx.get(Region, code, "region")


def policy_in_effect(ctx: Context, region_code: str, on: date | None = None) -> Policy:
    on = on or local_date(ctx.now)
    policy = ctx.session.exec(
        select(Policy).where(Policy.region == region_code, Policy.effective_from <= on)
        .order_by(Policy.effective_from.desc())).first()
    check_policy_in_effect(policy is not None, region_code, on)
    return policy


def subsidy_ratio_bp_in_effect(ctx: Context, region_code: str, on: date | None = None) -> int:
    """policy_in_effect(...).subsidy_ratio_bp, from the registry cache under the ledger lock."""
    on = on or local_date(ctx.now)

    def load():
        return tuple(ctx.session.connection().execute(
            select(Policy.effective_from, Policy.subsidy_ratio_bp).where(Policy.region == region_code)
            .order_by(Policy.effective_from.desc())).all())
    policies = registry_cache.cached(ctx.session, "policies", region_code, load)  # newest first
    ratio_bp = next((ratio for effective_from, ratio in policies if effective_from <= on), None)
    check_policy_in_effect(ratio_bp is not None, region_code, on)
    return ratio_bp


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
    append(ctx, kind="region.registered", region=code, refs={"region": code},
            data={"name_zh": name_zh, "name_en": name_en, "currency": currency, "timezone": timezone})
    return region


def adopt_policy(ctx: Context, region_code: str, **fields) -> Policy:
    lock(ctx)
    check_policy_date_free(ctx.session.exec(select(Policy.id).where(
        Policy.region == region_code, Policy.effective_from == fields["effective_from"])).first() is not None,
        region_code, fields["effective_from"])
    policy = Policy(region=region_code, **fields)
    ctx.session.add(policy)
    ctx.session.flush()
    append(ctx, kind="policy.adopted", region=region_code, refs={"region": region_code},
            data=policy_json(policy))
    return policy


def adopt_future_policy(ctx: Context, region_code: str, **fields) -> Policy:
    """An officer's new policy version: from tomorrow (Asia/Shanghai) at the earliest."""
    lock(ctx)
    get_region(ctx, region_code)
    check_policy_not_retroactive(fields["effective_from"], local_date(ctx.now))
    return adopt_policy(ctx, region_code, **fields)


def join_scheme(ctx: Context, keyring, *, code: str, name_zh: str, name_en: str, policies: list[dict],
                origin: str) -> Region:
    """A new member region, in one transaction: its signing key (created and
    published: the key's public half is a row of the published key set), its
    registration, its policies, and its budget funded with the `budget_fen` of
    the policy in effect today (or of its first policy, if none is yet).

    From the next checkpoint on, its key cosigns like every other active key;
    every worker finds the key on disk by its id when it first signs for it.
    """
    if not policies:
        raise InvalidInput("policy", "a new member region needs its first policy")
    lock(ctx)
    check_region_code_free(ctx.session.get(Region, code) is not None, code)
    # The key comes first: the region's first entry is signed by it.
    keyring.create_key(ctx.session, region=code, origin=origin, now_str=ctx.now_str)
    region = register_region(ctx, code=code, name_zh=name_zh, name_en=name_en, currency="CNY",
                             timezone=PROGRAMME_TIMEZONE)
    adopted = [adopt_policy(ctx, code, **policy) for policy in sorted(policies, key=lambda p: p["effective_from"])]
    today = local_date(ctx.now)
    in_effect = [p for p in adopted if p.effective_from <= today]
    funding = (in_effect or adopted)[-1 if in_effect else 0]
    if funding.budget_fen:
        budgets.fund_budget(ctx, code, funding.budget_fen,
                            reference=f"budget of the policy effective {funding.effective_from.isoformat()}")
    return region
