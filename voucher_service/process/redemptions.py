"""The unified process: reserve → claim → confirm → redeem, or cancel / reject."""
from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update

from voucher_service.catalogue.service import catalog_facts
from voucher_service.clock import local_date, new_id
from voucher_service.enterprises.service import related_provider_set
from voucher_service.journal.store import forget
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, held_account, payable_account, voucher_account
from voucher_service.models import Redemption, Voucher
from voucher_service.process import documents, rules
from voucher_service.process.vouchers import get_voucher
from voucher_service.programme.context import Context
from voucher_service.programme.errors import NotFound
from voucher_service.programme.regions import subsidy_ratio_bp_in_effect
from voucher_service.programme.writes import append as _append
from voucher_service.programme.writes import lock
from voucher_service.providers.service import provider_facts


def get_redemption(ctx: Context, redemption_id: str, *, for_update: bool = False) -> Redemption:
    return ctx.get(Redemption, redemption_id, "redemption", for_update=for_update)


def applicable_ratio_bp(ctx: Context, region: str, catalog_code: str) -> int:
    """The stricter of the catalogue item's and the issuing region's subsidy ratio."""
    return min(catalog_facts(ctx, catalog_code).max_subsidy_ratio_bp, subsidy_ratio_bp_in_effect(ctx, region))


def _refs(redemption: Redemption) -> dict:
    return {"redemption": redemption.id, "voucher": redemption.voucher_id,
            "enterprise": redemption.enterprise_id, "provider": redemption.provider_id}


_VOUCHER = Voucher.__table__
_REDEMPTION = Redemption.__table__
# Built once: constructing a statement costs more Python than running a cached one.
# No FOR UPDATE: every change to a voucher takes the ledger lock first.
_VOUCHER_TO_SPEND = select(_VOUCHER.c.id, _VOUCHER.c.enterprise_id, _VOUCHER.c.region, _VOUCHER.c.status,
                           _VOUCHER.c.valid_from, _VOUCHER.c.valid_until,
                           _VOUCHER.c.available_fen).where(_VOUCHER.c.id == bindparam("id"))
_HOLD = update(_VOUCHER).where(_VOUCHER.c.id == bindparam("voucher_id")).values(
    available_fen=_VOUCHER.c.available_fen - bindparam("amount"), held_fen=_VOUCHER.c.held_fen + bindparam("amount"))
_INSERT_REDEMPTION = insert(_REDEMPTION)


def reserve(ctx: Context, *, voucher_id: str, provider_id: str, catalog_code: str, service_fee_fen: int,
            amount_fen: int) -> Redemption:
    # The busiest write of the programme, so its statements are Core and its
    # reference data comes from the registry cache (docs/performance.md);
    # every rule is still checked against the state as of the ledger lock.
    lock(ctx)
    connection = ctx.session.connection()
    voucher = connection.execute(_VOUCHER_TO_SPEND, {"id": voucher_id}).first()
    if voucher is None:
        raise NotFound("voucher", f"no voucher {voucher_id}")
    provider = provider_facts(ctx, provider_id)
    item = catalog_facts(ctx, catalog_code)
    rules.check_voucher_usable(voucher.status, voucher.valid_from, voucher.valid_until, local_date(ctx.now))
    rules.check_catalog_item_active(item.active, item.code)
    rules.check_provider_active(provider.status, provider.id)
    rules.check_provider_not_excluded(provider.excluded_in, voucher.region, provider.id)
    rules.check_provider_accredited(provider.categories, item.category, provider.id)
    rules.check_not_related_party(related_provider_set(ctx, voucher.enterprise_id), provider.id)
    rules.check_subsidy_ratio(amount_fen, service_fee_fen, applicable_ratio_bp(ctx, voucher.region, item.code))
    rules.check_available_balance(amount_fen, voucher.available_fen)

    redemption = Redemption(id=new_id("rdm"), voucher_id=voucher.id, enterprise_id=voucher.enterprise_id,
                            provider_id=provider.id, region=voucher.region, catalog_code=item.code,
                            service_fee_fen=service_fee_fen, amount_fen=amount_fen, status="reserved",
                            reserved_at=ctx.now_str)
    connection.execute(_HOLD, {"voucher_id": voucher.id, "amount": amount_fen})
    forget(ctx.session, Voucher, voucher.id)
    connection.execute(_INSERT_REDEMPTION, {column: getattr(redemption, column) for column in _REDEMPTION.c.keys()})
    _append(ctx, kind="redemption.reserved", region=voucher.region, refs=_refs(redemption),
            postings=[Posting(voucher_account(voucher.id), held_account(voucher.id), amount_fen)],
            data={"catalog_code": item.code, "service_fee_fen": service_fee_fen, "amount_fen": amount_fen})
    return redemption


def _release_postings(voucher, amount_fen: int) -> list[Posting]:
    """Give held value back: to the voucher, and on to the budget if the voucher has closed."""
    postings = [Posting(held_account(voucher.id), voucher_account(voucher.id), amount_fen)]
    if voucher.status in rules.OPEN_VOUCHER_STATUSES:
        voucher.available_fen += amount_fen
        if voucher.status == "exhausted":
            rules.check_transition("voucher", voucher.status, "active", rules.VOUCHER_TRANSITIONS)
            voucher.status = "active"
    else:
        voucher.returned_fen += amount_fen
        postings.append(Posting(voucher_account(voucher.id), budget_account(voucher.region), amount_fen))
    voucher.held_fen -= amount_fen
    return postings


def claim(ctx: Context, redemption_id: str, *, invoice_no: str, service_fee_fen: int,
          amount_fen: int) -> Redemption:
    lock(ctx)
    redemption = get_redemption(ctx, redemption_id, for_update=True)
    rules.check_transition("redemption", redemption.status, "claimed", rules.REDEMPTION_TRANSITIONS)
    # Checked again, as at reservation: a provider suspended, or excluded by the
    # issuing region, after the reservation cannot claim it (docs/decisions.md).
    provider = provider_facts(ctx, redemption.provider_id)
    rules.check_provider_active(provider.status, provider.id)
    rules.check_provider_not_excluded(provider.excluded_in, redemption.region, provider.id)
    rules.check_claim_not_raising(amount_fen, redemption.amount_fen)
    rules.check_subsidy_ratio(amount_fen, service_fee_fen,
                              applicable_ratio_bp(ctx, redemption.region, redemption.catalog_code))
    # Evidence last (DESIGN §9): the rules above hold whatever documents there are.
    rules.check_invoice_not_claimed(documents.live_claim_of_invoice(ctx, provider.id, invoice_no), invoice_no,
                                    provider.id)
    evidence = documents.claim_evidence(ctx, redemption)
    voucher = get_voucher(ctx, redemption.voucher_id, for_update=True)
    released_fen = redemption.amount_fen - amount_fen
    postings = _release_postings(voucher, released_fen) if released_fen else []
    reserved_fen = redemption.amount_fen
    redemption.status = "claimed"
    redemption.invoice_no = invoice_no
    redemption.service_fee_fen = service_fee_fen
    redemption.amount_fen = amount_fen
    redemption.claimed_at = ctx.now_str
    ctx.session.add_all([voucher, redemption])
    ctx.session.flush()
    _append(ctx, kind="redemption.claimed", region=redemption.region, refs=_refs(redemption), postings=postings,
            data={"invoice_no": invoice_no, "service_fee_fen": service_fee_fen, "amount_fen": amount_fen,
                  "reserved_fen": reserved_fen, "documents": evidence})
    return redemption


def confirm(ctx: Context, redemption_id: str) -> Redemption:
    lock(ctx)
    redemption = get_redemption(ctx, redemption_id, for_update=True)
    rules.check_transition("redemption", redemption.status, "confirmed", rules.REDEMPTION_TRANSITIONS)
    redemption.status = "confirmed"
    redemption.confirmed_at = ctx.now_str
    ctx.session.add(redemption)
    ctx.session.flush()
    _append(ctx, kind="redemption.confirmed", region=redemption.region, refs=_refs(redemption),
            data={"amount_fen": redemption.amount_fen})
    return redemption


def approve(ctx: Context, redemption_id: str) -> Redemption:
    lock(ctx)
    redemption = get_redemption(ctx, redemption_id, for_update=True)
    rules.check_transition("redemption", redemption.status, "redeemed", rules.REDEMPTION_TRANSITIONS)
    voucher = get_voucher(ctx, redemption.voucher_id, for_update=True)
    voucher.held_fen -= redemption.amount_fen
    voucher.redeemed_fen += redemption.amount_fen
    if voucher.status == "active" and voucher.available_fen == 0 and voucher.held_fen == 0:
        rules.check_transition("voucher", voucher.status, "exhausted", rules.VOUCHER_TRANSITIONS)
        voucher.status = "exhausted"
    redemption.status = "redeemed"
    redemption.redeemed_at = ctx.now_str
    ctx.session.add_all([voucher, redemption])
    ctx.session.flush()
    _append(ctx, kind="redemption.redeemed", region=redemption.region, refs=_refs(redemption),
            postings=[Posting(held_account(voucher.id), payable_account(redemption.region, redemption.provider_id),
                              redemption.amount_fen)],
            data={"amount_fen": redemption.amount_fen, "invoice_no": redemption.invoice_no})
    return redemption


def _release(ctx: Context, redemption_id: str, target: str, reason: str | None) -> Redemption:
    lock(ctx)
    redemption = get_redemption(ctx, redemption_id, for_update=True)
    rules.check_transition("redemption", redemption.status, target, rules.REDEMPTION_TRANSITIONS)
    voucher = get_voucher(ctx, redemption.voucher_id, for_update=True)
    postings = _release_postings(voucher, redemption.amount_fen)
    redemption.status = target
    redemption.reason = reason
    setattr(redemption, f"{target}_at", ctx.now_str)
    ctx.session.add_all([voucher, redemption])
    ctx.session.flush()
    _append(ctx, kind=f"redemption.{target}", region=redemption.region, refs=_refs(redemption),
            postings=postings, data={"amount_fen": redemption.amount_fen, "reason": reason})
    return redemption


def cancel(ctx: Context, redemption_id: str, *, reason: str | None = None) -> Redemption:
    return _release(ctx, redemption_id, "cancelled", reason)


def reject(ctx: Context, redemption_id: str, *, reason: str) -> Redemption:
    return _release(ctx, redemption_id, "rejected", reason)
