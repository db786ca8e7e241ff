"""The unified process (服务流程统一): reserve → claim → confirm → approve, or cancel / reject."""
from flask import url_for
from marshmallow import Schema, fields, validate
from sqlmodel import or_, select

from voucher_service.http.common import (
    Blueprint,
    Fen,
    PageArgs,
    ResourceSchema,
    Text,
    domain_context,
    forbid,
    hide,
    page,
    page_schema,
    require,
)
from voucher_service.models import Provider, Redemption
from voucher_service.process import redemptions, vouchers
from voucher_service.process.api.vouchers import can_see_voucher

URL = "/redemptions"
blp = Blueprint("redemptions", __name__, description="Spending a voucher at a provider")

STATUSES = ["reserved", "claimed", "confirmed", "redeemed", "cancelled", "rejected", "settled"]


class RedemptionSchema(ResourceSchema):
    id = fields.String()
    voucher_id = fields.String()
    enterprise_id = fields.String()
    provider_id = fields.String()
    region = fields.String(metadata={"description": "the issuing region, which pays"})
    catalog_code = fields.String()
    service_fee_fen = fields.Integer()
    amount_fen = fields.Integer()
    status = fields.String(metadata={"enum": STATUSES})
    invoice_no = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    reserved_at = fields.String()
    claimed_at = fields.String(allow_none=True)
    confirmed_at = fields.String(allow_none=True)
    redeemed_at = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    rejected_at = fields.String(allow_none=True)


class RedemptionCreate(Schema):
    voucher_id = Text(40)
    provider_id = Text(40)
    catalog_code = Text(32)
    service_fee_fen = Fen(required=True)
    amount_fen = Fen(required=True)


class RedemptionClaim(Schema):
    invoice_no = Text(64)
    service_fee_fen = Fen(required=True)
    amount_fen = Fen(required=True)


class RedemptionCancel(Schema):
    reason = Text(500, required=False)


class RedemptionReject(Schema):
    reason = Text(500)


class RedemptionListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    voucher_id = fields.String(validate=validate.Length(max=40))


def _visible(who, redemption: Redemption, session) -> bool:
    if who.role in ("auditor", "admin"):
        return True
    if who.role == "sme":
        return who.enterprise_id == redemption.enterprise_id
    if who.role == "provider":
        return who.provider_id == redemption.provider_id
    if who.role in ("officer", "finance"):
        # The paying region, and the region that registered the provider.
        provider = session.get(Provider, redemption.provider_id)
        return who.region in (redemption.region, provider.region if provider else None)
    return False


def _load(redemption_id: str, *, acting_role: str):
    """The redemption if the caller may see it (else 404) and acts in `acting_role` (else 403)."""
    who = require()
    ctx = domain_context()
    redemption = ctx.session.get(Redemption, redemption_id)
    if redemption is None or not _visible(who, redemption, ctx.session):
        hide(f"no redemption {redemption_id}")
    allowed = {
        "sme": who.role == "sme" and who.enterprise_id == redemption.enterprise_id,
        "provider": who.role == "provider" and who.provider_id == redemption.provider_id,
        "officer": who.role == "officer" and who.region == redemption.region,
    }[acting_role]
    if not allowed:
        whom = {"sme": "the enterprise holding the voucher", "provider": "the provider of the service",
                "officer": f"an officer of the issuing region ({redemption.region})"}[acting_role]
        forbid(f"only {whom} may do this")
    return ctx


@blp.route("")
@blp.arguments(RedemptionListArgs, location="query")
@blp.response(200, page_schema(RedemptionSchema, "RedemptionPage"))
def list_redemptions(args):
    who = require()
    query = select(Redemption)
    if who.role == "sme":
        query = query.where(Redemption.enterprise_id == who.enterprise_id)
    elif who.role == "provider":
        query = query.where(Redemption.provider_id == who.provider_id)
    elif who.role in ("officer", "finance"):
        query = query.where(or_(Redemption.region == who.region, Redemption.provider_id.in_(
            select(Provider.id).where(Provider.region == who.region))))
    for name in ("status", "voucher_id"):
        if name in args:
            query = query.where(getattr(Redemption, name) == args[name])
    return page(query, Redemption.id, args)


@blp.route("", methods=["POST"])
@blp.arguments(RedemptionCreate)
@blp.response(201, RedemptionSchema)
def reserve(body):
    who = require()
    ctx = domain_context()
    voucher = vouchers.voucher_holder(ctx, body["voucher_id"])
    if voucher is None or not can_see_voucher(who, voucher):
        hide(f"no voucher {body['voucher_id']}")
    if who.role != "sme" or who.enterprise_id != voucher.enterprise_id:
        forbid("only the enterprise holding the voucher may spend it")
    redemption = redemptions.reserve(ctx, **body)
    return redemption, 201, {"Location": url_for("redemptions.get_redemption", redemption_id=redemption.id)}


@blp.route("/<string:redemption_id>")
@blp.response(200, RedemptionSchema)
def get_redemption(redemption_id):
    who = require()
    session = domain_context().session
    redemption = session.get(Redemption, redemption_id)
    if redemption is None or not _visible(who, redemption, session):
        hide(f"no redemption {redemption_id}")
    return redemption


@blp.route("/<string:redemption_id>/claim", methods=["POST"])
@blp.arguments(RedemptionClaim)
@blp.response(200, RedemptionSchema)
def claim(body, redemption_id):
    return redemptions.claim(_load(redemption_id, acting_role="provider"), redemption_id, **body)


@blp.route("/<string:redemption_id>/confirm", methods=["POST"])
@blp.response(200, RedemptionSchema)
def confirm(redemption_id):
    return redemptions.confirm(_load(redemption_id, acting_role="sme"), redemption_id)


@blp.route("/<string:redemption_id>/approve", methods=["POST"])
@blp.response(200, RedemptionSchema)
def approve(redemption_id):
    return redemptions.approve(_load(redemption_id, acting_role="officer"), redemption_id)


@blp.route("/<string:redemption_id>/reject", methods=["POST"])
@blp.arguments(RedemptionReject)
@blp.response(200, RedemptionSchema)
def reject(body, redemption_id):
    return redemptions.reject(_load(redemption_id, acting_role="officer"), redemption_id, **body)


@blp.route("/<string:redemption_id>/cancel", methods=["POST"])
@blp.arguments(RedemptionCancel)
@blp.response(200, RedemptionSchema)
def cancel(body, redemption_id):
    return redemptions.cancel(_load(redemption_id, acting_role="sme"), redemption_id, **body)
