"""The shared provider registry (服务机构统一): registered by the home region, recognised everywhere."""
from flask import url_for
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
from voucher_service.models import Provider, ProviderCategory
from voucher_service.providers import exclusions
from voucher_service.providers import service as providers
from voucher_service.providers.uscc import USCC_LENGTH

URL = "/providers"
blp = Blueprint("providers", __name__, description="The shared, mutually recognised provider registry")

USCC_FIELD = dict(required=True, validate=validate.Length(equal=USCC_LENGTH),
                  metadata={"description": "unified social credit code, GB 32100-2015 (check character verified)"})


class ProviderSchema(ResourceSchema):
    id = fields.String()
    name = fields.String()
    uscc = fields.String()
    region = fields.String()
    categories = fields.List(fields.String())
    status = fields.String(metadata={"enum": ["active", "suspended"]})
    excluded_in = fields.List(fields.String(), metadata={
        "description": "regions whose vouchers may not be spent here (GET /regions/{code}/excluded-providers); "
                       "vouchers of every other region may"})
    created_at = fields.String()
    updated_at = fields.String()


class ProviderCreate(Schema):
    name = Text(200)
    uscc = fields.String(**USCC_FIELD)
    region = Text(8)
    categories = fields.List(fields.String(validate=validate.Length(min=1, max=32)), required=True,
                             validate=validate.Length(min=1, max=6))


class ProviderListArgs(PageArgs):
    region = fields.String(validate=validate.Length(max=8))
    category = fields.String(validate=validate.Length(max=32))
    status = fields.String(validate=validate.OneOf(["active", "suspended"]))


def provider_view(ctx, provider: Provider, excluded_in: list[str] | None = None) -> dict:
    if excluded_in is None:
        excluded_in = exclusions.excluded_in(ctx, [provider.id])[provider.id]
    return {**provider.model_dump(), "categories": providers.provider_categories(ctx, provider.id),
            "excluded_in": excluded_in}


@blp.route("")
@blp.arguments(ProviderListArgs, location="query")
@blp.response(200, page_schema(ProviderSchema, "ProviderPage"))
def list_providers(args):
    ctx = domain_context()
    query = select(Provider)
    query = where_equal(query, Provider, args, ("region", "status"))
    if "category" in args:
        query = query.where(Provider.id.in_(select(ProviderCategory.provider_id)
                                            .where(ProviderCategory.category == args["category"])))
    result = page(query, Provider.id, args)
    excluded_in = exclusions.excluded_in(ctx, [p.id for p in result["items"]])
    result["items"] = [provider_view(ctx, p, excluded_in[p.id]) for p in result["items"]]
    return result


@blp.route("", methods=["POST"])
@blp.arguments(ProviderCreate)
@blp.response(201, ProviderSchema)
def create_provider(body):
    access.check(access.Facts(region=body["region"]))
    ctx = domain_context()
    provider = providers.register_provider(ctx, **body)
    return provider_view(ctx, provider), 201, {"Location": url_for("providers.get_provider", provider_id=provider.id)}


@blp.route("/<string:provider_id>")
@blp.response(200, ProviderSchema)
def get_provider(provider_id):
    ctx = domain_context()
    return provider_view(ctx, providers.get_provider(ctx, provider_id))


def _set_status(provider_id: str, status: str):
    access.load("provider", provider_id)
    ctx = domain_context()
    return provider_view(ctx, providers.set_provider_status(ctx, provider_id, status))


@blp.route("/<string:provider_id>/suspend", methods=["POST"])
@blp.response(200, ProviderSchema)
def suspend_provider(provider_id):
    return _set_status(provider_id, "suspended")


@blp.route("/<string:provider_id>/reinstate", methods=["POST"])
@blp.response(200, ProviderSchema)
def reinstate_provider(provider_id):
    return _set_status(provider_id, "active")
