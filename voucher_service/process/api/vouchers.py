"""Vouchers and their balances."""
from marshmallow import Schema, fields, validate
from sqlmodel import select

from voucher_service.http import access
from voucher_service.http.common import (
    Blueprint,
    PageArgs,
    ResourceSchema,
    Text,
    domain_context,
    page,
    page_schema,
    where_equal,
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


class VoucherExtend(Schema):
    valid_until = fields.Date(required=True, metadata={
        "description": "the new last valid day: after the current one, and at most the policy's validity_days "
                       "beyond it"})
    reason = Text(500)


@blp.route("")
@blp.arguments(VoucherListArgs, location="query")
@blp.response(200, page_schema(VoucherSchema, "VoucherPage"))
def list_vouchers(args):
    query = access.visible("voucher", select(Voucher))
    query = where_equal(query, Voucher, args, ("status", "enterprise_id"))
    return page(query, Voucher.id, args)


@blp.route("/<string:voucher_id>")
@blp.response(200, VoucherSchema)
def get_voucher(voucher_id):
    return access.load("voucher", voucher_id)


@blp.route("/<string:voucher_id>/void", methods=["POST"])
@blp.arguments(VoucherVoid)
@blp.response(200, VoucherSchema)
def void(body, voucher_id):
    access.load("voucher", voucher_id)
    return vouchers.void_voucher(domain_context(), voucher_id, **body)


@blp.route("/<string:voucher_id>/extend", methods=["POST"])
@blp.arguments(VoucherExtend)
@blp.response(200, VoucherSchema)
def extend(body, voucher_id):
    access.load("voucher", voucher_id)
    return vouchers.extend_voucher(domain_context(), voucher_id, **body)
