"""Applications: an SME asks its home region for a voucher; an officer decides."""
from flask import url_for
from marshmallow import Schema, fields

from voucher_service.http import access
from voucher_service.http.common import Blueprint, Fen, ResourceSchema, Text, domain_context
from voucher_service.process import applications
from voucher_service.process.api.vouchers import VoucherSchema

URL = "/applications"
blp = Blueprint("applications", __name__, description="Voucher applications (apply → approve issues the voucher)")


class ApplicationSchema(ResourceSchema):
    id = fields.String()
    enterprise_id = fields.String()
    region = fields.String()
    amount_fen = fields.Integer()
    purpose = fields.String()
    status = fields.String(metadata={"enum": ["submitted", "approved", "rejected"]})
    approved_fen = fields.Integer(allow_none=True)
    voucher_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    submitted_at = fields.String()
    decided_at = fields.String(allow_none=True)


class ApplicationDecisionSchema(ApplicationSchema):
    voucher = fields.Nested(VoucherSchema, allow_none=True)


class ApplicationCreate(Schema):
    amount_fen = Fen(required=True)
    purpose = Text(500)


class ApplicationApprove(Schema):
    amount_fen = Fen(metadata={"description": "at most the amount requested; defaults to it"})
    valid_until = fields.Date(metadata={"description": "last valid day; defaults to the policy's validity"})


class ApplicationReject(Schema):
    reason = Text(500)


@blp.route("", methods=["POST"])
@blp.arguments(ApplicationCreate)
@blp.response(201, ApplicationSchema)
def submit(body):
    who = access.principal()
    application = applications.submit_application(domain_context(), enterprise_id=who.enterprise_id, **body)
    return application, 201, {"Location": url_for("applications.get_application", application_id=application.id)}


def _for_officer(application_id):
    access.load("application", application_id)
    return domain_context()


@blp.route("/<string:application_id>")
@blp.response(200, ApplicationSchema)
def get_application(application_id):
    return access.load("application", application_id)


@blp.route("/<string:application_id>/approve", methods=["POST"])
@blp.arguments(ApplicationApprove)
@blp.response(200, ApplicationDecisionSchema)
def approve(body, application_id):
    ctx = _for_officer(application_id)
    application, voucher = applications.approve_application(ctx, application_id, **body)
    return {**application.model_dump(), "voucher": voucher}


@blp.route("/<string:application_id>/reject", methods=["POST"])
@blp.arguments(ApplicationReject)
@blp.response(200, ApplicationSchema)
def reject(body, application_id):
    ctx = _for_officer(application_id)
    return applications.reject_application(ctx, application_id, **body)
