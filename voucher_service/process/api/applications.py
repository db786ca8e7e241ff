"""Applications: an SME asks its home region for a voucher; an officer decides."""
from datetime import date, timedelta

from flask import url_for
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlmodel import select

from voucher_service.clock import PROGRAMME_TIMEZONE, local_midnight_utc
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
from voucher_service.models import Application
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


# Far beyond any programme, and inside what dates shifted by a UTC offset can represent.
_DAY_RANGE = validate.Range(min=date(1900, 1, 1), max=date(9998, 12, 31))


def LocalDay(description: str):
    return fields.Date(validate=_DAY_RANGE,
                       metadata={"description": f"{description} (YYYY-MM-DD, a day in {PROGRAMME_TIMEZONE})"})


def check_day_range(data: dict, first: str, last: str) -> None:
    if first in data and last in data and data[first] > data[last]:
        raise ValidationError(f"must not be before {first}", field_name=last)


def within_days(query, column, args: dict, first: str, last: str):
    """`query` narrowed to rows whose RFC 3339 UTC `column` falls in the local days
    args[first]..args[last], both inclusive: the stored strings compare in time order."""
    if first in args:
        query = query.where(column >= local_midnight_utc(args[first]))
    if last in args:
        query = query.where(column < local_midnight_utc(args[last] + timedelta(days=1)))
    return query


class ApplicationListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(["submitted", "approved", "rejected"]))
    enterprise_id = fields.String(validate=validate.Length(max=40))
    submitted_from = LocalDay("submitted on or after this day")
    submitted_to = LocalDay("submitted on or before this day")

    @validates_schema
    def _range(self, data, **_kwargs):
        check_day_range(data, "submitted_from", "submitted_to")


class ApplicationCreate(Schema):
    amount_fen = Fen(required=True)
    purpose = Text(500)


class ApplicationApprove(Schema):
    amount_fen = Fen(metadata={"description": "at most the amount requested; defaults to it"})
    valid_until = fields.Date(metadata={"description": "last valid day; defaults to, and may not be later than, "
                                                       "today + the policy's validity_days - 1"})


class ApplicationReject(Schema):
    reason = Text(500)


@blp.route("")
@blp.arguments(ApplicationListArgs, location="query")
@blp.response(200, page_schema(ApplicationSchema, "ApplicationPage"))
def list_applications(args):
    """The review queue: `status=submitted` is what awaits a decision, oldest first."""
    query = access.visible("application", select(Application))
    query = where_equal(query, Application, args, ("status", "enterprise_id"))
    query = within_days(query, Application.submitted_at, args, "submitted_from", "submitted_to")
    return page(query, Application.id, args)


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
