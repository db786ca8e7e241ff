"""SMEs: enterprises and start-up teams, registered by their home region."""
from flask import url_for
from marshmallow import Schema, fields, validate
from sqlmodel import select

from voucher_service.enterprises import service as enterprises
from voucher_service.http import access
from voucher_service.http.common import (
    Blueprint,
    PageArgs,
    ResourceSchema,
    Text,
    domain_context,
    page,
    page_schema,
)
from voucher_service.models import Enterprise
from voucher_service.providers.api.registry import USCC_FIELD

URL = "/enterprises"
blp = Blueprint("enterprises", __name__, description="SMEs that hold vouchers")


class EnterpriseSchema(ResourceSchema):
    id = fields.String()
    name = fields.String()
    uscc = fields.String()
    region = fields.String()
    kind = fields.String(metadata={"enum": ["enterprise", "team"]})
    related_provider_ids = fields.List(fields.String())
    created_at = fields.String()


class EnterpriseCreate(Schema):
    name = Text(200)
    uscc = fields.String(**USCC_FIELD)
    region = Text(8)
    kind = fields.String(required=True, validate=validate.OneOf(["enterprise", "team"]))
    related_provider_ids = fields.List(fields.String(validate=validate.Length(min=1, max=40)),
                                       load_default=list, validate=validate.Length(max=50))


def enterprise_view(ctx, enterprise: Enterprise) -> dict:
    return {**enterprise.model_dump(), "related_provider_ids": enterprises.related_provider_ids(ctx, enterprise.id)}


@blp.route("")
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_schema(EnterpriseSchema, "EnterprisePage"))
def list_enterprises(args):
    ctx = domain_context()
    query = access.visible("enterprise", select(Enterprise))
    result = page(query, Enterprise.id, args)
    result["items"] = [enterprise_view(ctx, e) for e in result["items"]]
    return result


@blp.route("", methods=["POST"])
@blp.arguments(EnterpriseCreate)
@blp.response(201, EnterpriseSchema)
def create_enterprise(body):
    access.check(access.Facts(region=body["region"]))
    ctx = domain_context()
    enterprise = enterprises.register_enterprise(ctx, **body)
    return (enterprise_view(ctx, enterprise), 201,
            {"Location": url_for("enterprises.get_enterprise", enterprise_id=enterprise.id)})


@blp.route("/<string:enterprise_id>")
@blp.response(200, EnterpriseSchema)
def get_enterprise(enterprise_id):
    enterprise = access.load("enterprise", enterprise_id)
    return enterprise_view(domain_context(), enterprise)
