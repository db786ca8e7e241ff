"""The unified process (服务流程统一): reserve → claim → confirm → approve, or cancel / reject."""
from flask import url_for
from marshmallow import Schema, fields, validate, validates_schema
from sqlmodel import select

from voucher_service.http import access
from voucher_service.http.common import (
    Blueprint,
    Fen,
    PageArgs,
    ResourceSchema,
    Text,
    domain_context,
    page,
    page_schema,
    where_equal,
)
from voucher_service.models import Redemption
from voucher_service.payout import recoveries
from voucher_service.process import redemptions, vouchers
from voucher_service.process.api.applications import LocalDay, check_day_range, within_days

URL = "/redemptions"
blp = Blueprint("redemptions", __name__, description="Spending a voucher at a provider")

STATUSES = ["reserved", "claimed", "confirmed", "redeemed", "cancelled", "rejected", "settled", "recovered"]


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
    settled_at = fields.String(allow_none=True)
    recovered_fen = fields.Integer(allow_none=True, metadata={"description": "recovered (clawed back), fen"})
    recovered_at = fields.String(allow_none=True)
    recovery_reason = fields.String(allow_none=True)


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


class RedemptionRecover(Schema):
    amount_fen = Fen(required=True, metadata={"description": "at most what the redemption paid"})
    reason = Text(500)


class RedemptionListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    voucher_id = fields.String(validate=validate.Length(max=40))
    provider_id = fields.String(validate=validate.Length(max=40))
    enterprise_id = fields.String(validate=validate.Length(max=40))
    region = fields.String(validate=validate.Length(max=8),
                           metadata={"description": "the voucher's issuing region, whose officers decide the claim"})
    reserved_from = LocalDay("reserved on or after this day")
    reserved_to = LocalDay("reserved on or before this day")

    @validates_schema
    def _range(self, data, **_kwargs):
        check_day_range(data, "reserved_from", "reserved_to")


def _load(redemption_id: str):
    access.load("redemption", redemption_id)
    return domain_context()


@blp.route("")
@blp.arguments(RedemptionListArgs, location="query")
@blp.response(200, page_schema(RedemptionSchema, "RedemptionPage"))
def list_redemptions(args):
    query = access.visible("redemption", select(Redemption))
    query = where_equal(query, Redemption, args, ("status", "voucher_id", "provider_id", "enterprise_id", "region"))
    query = within_days(query, Redemption.reserved_at, args, "reserved_from", "reserved_to")
    return page(query, Redemption.id, args)


@blp.route("", methods=["POST"])
@blp.arguments(RedemptionCreate)
@blp.response(201, RedemptionSchema)
def reserve(body):
    ctx = domain_context()
    # The holder's row, not the ORM voucher: every reservation asks (docs/performance.md).
    holder = vouchers.voucher_holder(ctx, body["voucher_id"])
    access.load("voucher", body["voucher_id"], row=holder,
                facts=None if holder is None else access.Facts(region=holder.region, enterprise_id=holder.enterprise_id))
    redemption = redemptions.reserve(ctx, **body)
    return redemption, 201, {"Location": url_for("redemptions.get_redemption", redemption_id=redemption.id)}


@blp.route("/<string:redemption_id>")
@blp.response(200, RedemptionSchema)
def get_redemption(redemption_id):
    return access.load("redemption", redemption_id)


@blp.route("/<string:redemption_id>/claim", methods=["POST"])
@blp.arguments(RedemptionClaim)
@blp.response(200, RedemptionSchema)
def claim(body, redemption_id):
    return redemptions.claim(_load(redemption_id), redemption_id, **body)


@blp.route("/<string:redemption_id>/confirm", methods=["POST"])
@blp.response(200, RedemptionSchema)
def confirm(redemption_id):
    return redemptions.confirm(_load(redemption_id), redemption_id)


@blp.route("/<string:redemption_id>/approve", methods=["POST"])
@blp.response(200, RedemptionSchema)
def approve(redemption_id):
    return redemptions.approve(_load(redemption_id), redemption_id)


@blp.route("/<string:redemption_id>/reject", methods=["POST"])
@blp.arguments(RedemptionReject)
@blp.response(200, RedemptionSchema)
def reject(body, redemption_id):
    return redemptions.reject(_load(redemption_id), redemption_id, **body)


@blp.route("/<string:redemption_id>/cancel", methods=["POST"])
@blp.arguments(RedemptionCancel)
@blp.response(200, RedemptionSchema)
def cancel(body, redemption_id):
    return redemptions.cancel(_load(redemption_id), redemption_id, **body)


@blp.route("/<string:redemption_id>/recover", methods=["POST"])
@blp.arguments(RedemptionRecover)
@blp.response(200, RedemptionSchema)
def recover(body, redemption_id):
    """Claw back money found not due: before settlement it goes back to the budget; after, the
    provider owes it (receivable), repaid or offset against its next payout."""
    return recoveries.recover(_load(redemption_id), redemption_id, **body)
