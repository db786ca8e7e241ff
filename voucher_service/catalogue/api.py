"""The shared catalogue of eligible services (服务内容统一)."""
from flask import url_for
from marshmallow import Schema, fields, validate
from sqlmodel import select

from voucher_service.catalogue import service as catalogue
from voucher_service.http import access
from voucher_service.http.common import (
    Blueprint,
    FullMatch,
    PageArgs,
    ResourceSchema,
    Text,
    domain_context,
    page,
    page_schema,
    where_equal,
)
from voucher_service.models import CatalogItem

URL = "/catalog"
blp = Blueprint("catalog", __name__, description="The shared catalogue of eligible services")

CODE = FullMatch(r"^[A-Z0-9][A-Z0-9-]{0,31}$", error="Use 1-32 upper-case letters, digits and dashes.")
RATIO = validate.Range(min=1, max=10_000)


class CatalogItemSchema(ResourceSchema):
    code = fields.String()
    category = fields.String()
    name_zh = fields.String()
    name_en = fields.String()
    max_subsidy_ratio_bp = fields.Integer()
    active = fields.Boolean()
    created_at = fields.String()
    updated_at = fields.String()


class CatalogItemCreate(Schema):
    code = fields.String(required=True, validate=CODE)
    category = Text(32)
    name_zh = Text(200)
    name_en = Text(200)
    max_subsidy_ratio_bp = fields.Integer(required=True, strict=True, validate=RATIO)
    active = fields.Boolean(load_default=True)


class CatalogItemUpdate(Schema):
    category = Text(32, required=False)
    name_zh = Text(200, required=False)
    name_en = Text(200, required=False)
    max_subsidy_ratio_bp = fields.Integer(strict=True, validate=RATIO)
    active = fields.Boolean()


class CatalogListArgs(PageArgs):
    category = fields.String(validate=validate.Length(max=32))
    active = fields.Boolean()


@blp.route("")
@blp.arguments(CatalogListArgs, location="query")
@blp.response(200, page_schema(CatalogItemSchema, "CatalogPage"))
def list_items(args):
    query = select(CatalogItem)
    query = where_equal(query, CatalogItem, args, ("category", "active"))
    return page(query, CatalogItem.code, args)


@blp.route("", methods=["POST"])
@blp.arguments(CatalogItemCreate)
@blp.response(201, CatalogItemSchema)
def create_item(body):
    # The catalogue is shared; its entries are recorded under the authority of the officer's region.
    item = catalogue.add_catalog_item(domain_context(), region=access.principal().region, **body)
    return item, 201, {"Location": url_for("catalog.get_item", code=item.code)}


@blp.route("/<string:code>")
@blp.response(200, CatalogItemSchema)
def get_item(code):
    return catalogue.get_catalog_item(domain_context(), code)


@blp.route("/<string:code>", methods=["PATCH"])
@blp.arguments(CatalogItemUpdate)
@blp.response(200, CatalogItemSchema)
def update_item(body, code):
    return catalogue.update_catalog_item(domain_context(), code, region=access.principal().region, changes=body)
