"""Vouchers and their balances."""
from marshmallow import Schema, fields, validate
from sqlmodel import select

from voucher_service.http.common import (
    Blueprint,
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
from voucher_service.models import Voucher
from voucher_service.process import vouchers

URL = "/vouchers"
blp = Blueprint("vouchers", __name__, description="Vouchers and their balances")

STATUSES = ["active", "exhausted", "expired", "voided"]


class VoucherSchema(ResourceSchema):
    id = fields.String()
    code = fields.String()
    enterprise_id = fields.String()
    application_id = fields.String()
    region = fields.String()
    face_fen = fields.Integer()
    available_fen = fields.Integer()
    held_fen = fields.Integer()
    redeemed_fen = fields.Integer()
    returned_fen = fields.Integer(metadata={"description": "value given back to the budget by voiding or expiry"})
    status = fields.String(metadata={"enum": STATUSES})
    valid_from = fields.Date()
    valid_until = fields.Date()
    issued_at = fields.String()
    closed_at = fields.String(allow_none=True)


class VoucherListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    enterprise_id = fields.String(validate=validate.Length(max=40))


class VoucherVoid(Schema):
    reason = Text(500)


def can_see_voucher(who, voucher: Voucher) -> bool:
    if who.role in ("auditor", "admin"):
        return True
    if who.role in ("officer", "finance"):
        return who.region == voucher.region
    return who.role == "sme" and who.enterprise_id == voucher.enterprise_id


@blp.route("")
@blp.arguments(VoucherListArgs, location="query")
@blp.response(200, page_schema(VoucherSchema, "VoucherPage"))
def list_vouchers(args):
    who = require("sme", "officer", "finance", "auditor", "admin")
    query = select(Voucher)
    if who.role == "sme":
        query = query.where(Voucher.enterprise_id == who.enterprise_id)
    elif who.role in ("officer", "finance"):
        query = query.where(Voucher.region == who.region)
    if "status" in args:
        query = query.where(Voucher.status == args["status"])
    if "enterprise_id" in args:
        query = query.where(Voucher.enterprise_id == args["enterprise_id"])
    return page(query, Voucher.id, args)


@blp.route("/<string:voucher_id>")
@blp.response(200, VoucherSchema)
def get_voucher(voucher_id):
    who = require()
    voucher = domain_context().session.get(Voucher, voucher_id)
    if voucher is None or not can_see_voucher(who, voucher):
        hide(f"no voucher {voucher_id}")
    return voucher


@blp.route("/<string:voucher_id>/void", methods=["POST"])
@blp.arguments(VoucherVoid)
@blp.response(200, VoucherSchema)
def void(body, voucher_id):
    who = require()
    ctx = domain_context()
    voucher = ctx.session.get(Voucher, voucher_id)
    if voucher is None or not can_see_voucher(who, voucher):
        hide(f"no voucher {voucher_id}")
    if who.role != "officer":
        forbid(f"only an officer of {voucher.region} may void this voucher")
    return vouchers.void_voucher(ctx, voucher_id, **body)
