"""The shared catalogue of eligible services (服务内容统一), and its governance:
a change is a proposal until a quorum of member regions approves (catalogue/proposals.py)."""
from flask import current_app, url_for
from marshmallow import Schema, fields, validate
from sqlmodel import select

from voucher_service.catalogue import proposals
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
from voucher_service.models import CatalogItem, CatalogProposal

URL = "/catalog"
PROPOSAL_STATUSES = ["open", "adopted", "withdrawn"]
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


class CategorySchema(Schema):
    code = fields.String()
    name_zh = fields.String()
    name_en = fields.String()


class CategoryListSchema(Schema):
    items = fields.List(fields.Nested(CategorySchema))


class CatalogListArgs(PageArgs):
    category = fields.String(validate=validate.Length(max=32))
    active = fields.Boolean()


class ChangeSchema(Schema):
    action = fields.String(metadata={"enum": [proposals.CREATE, proposals.UPDATE]})
    code = fields.String()
    fields_ = fields.Dict(data_key="fields", attribute="fields",
                          metadata={"description": "the create body (without code) or the PATCH's fields"})


class ProposalApprovalSchema(Schema):
    region = fields.String()
    approved_by = fields.String()
    approved_at = fields.String()


class CatalogProposalSchema(ResourceSchema):
    id = fields.String()
    change = fields.Nested(ChangeSchema)
    region = fields.String(metadata={"description": "the proposing region: its approval is the first"})
    proposed_by = fields.String()
    proposed_at = fields.String()
    approvals = fields.List(fields.Nested(ProposalApprovalSchema))
    required_approvals = fields.Integer(metadata={
        "description": "VOUCHERS_CATALOGUE_QUORUM counted against the member regions: now while open, "
                       "at the decision once adopted or withdrawn"})
    status = fields.String(metadata={"enum": PROPOSAL_STATUSES})
    decided_at = fields.String(allow_none=True)


class ProposalListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(PROPOSAL_STATUSES))
    code = fields.String(validate=CODE)


@blp.route("")
@blp.arguments(CatalogListArgs, location="query")
@blp.response(200, page_schema(CatalogItemSchema, "CatalogPage"))
def list_items(args):
    query = select(CatalogItem)
    query = where_equal(query, CatalogItem, args, ("category", "active"))
    return page(query, CatalogItem.code, args)


@blp.route("/categories")
@blp.response(200, CategoryListSchema)
def list_categories():
    """The catalogue's categories (DESIGN §1: six in the seeds), with their names:
    an item's `category` and a provider's accreditations are these codes."""
    return {"items": catalogue.list_categories(domain_context())}


@blp.route("", methods=["POST"])
@blp.arguments(CatalogItemCreate)
@blp.response(202, CatalogProposalSchema)
def create_item(body):
    """Proposes a new item: in the catalogue once a quorum of member regions approves."""
    fields_ = {name: value for name, value in body.items() if name != "code"}
    return _proposed(action=proposals.CREATE, code=body["code"], fields_=fields_)


@blp.route("/<string:code>")
@blp.response(200, CatalogItemSchema)
def get_item(code):
    return catalogue.get_catalog_item(domain_context(), code)


@blp.route("/<string:code>", methods=["PATCH"])
@blp.arguments(CatalogItemUpdate)
@blp.response(202, CatalogProposalSchema)
def update_item(body, code):
    """Proposes a change of an item: in effect once a quorum of member regions approves."""
    return _proposed(action=proposals.UPDATE, code=code, fields_=body)


def _quorum():
    return current_app.config["VOUCHERS_CATALOGUE_QUORUM"]


def _proposed(*, action, code, fields_):
    ctx = domain_context()
    # Recorded under the authority of the officer's region, which is its first approval.
    proposal = proposals.propose(ctx, region=access.principal().region, action=action, code=code, fields=fields_,
                                 quorum=_quorum())
    return (proposal_view(ctx, proposal), 202,
            {"Location": url_for("catalog.get_proposal", proposal_id=proposal.id)})


def proposal_view(ctx, proposal: CatalogProposal) -> dict:
    return {**proposal.model_dump(exclude={"change", "open_code", "decided_quorum"}),
            "change": proposals.change_of(proposal),
            "approvals": proposals.approvals_of(ctx, proposal.id),
            "required_approvals": proposals.approvals_required_of(ctx, proposal, _quorum())}


@blp.route("/proposals")
@blp.arguments(ProposalListArgs, location="query")
@blp.response(200, page_schema(CatalogProposalSchema, "CatalogProposalPage"))
def list_proposals(args):
    ctx = domain_context()
    query = access.visible("catalog_proposal", select(CatalogProposal))
    query = where_equal(query, CatalogProposal, args, ("status", "code"))
    result = page(query, CatalogProposal.id, args)
    result["items"] = [proposal_view(ctx, p) for p in result["items"]]
    return result


@blp.route("/proposals/<string:proposal_id>")
@blp.response(200, CatalogProposalSchema)
def get_proposal(proposal_id):
    proposal = access.load("catalog_proposal", proposal_id)
    return proposal_view(domain_context(), proposal)


@blp.route("/proposals/<string:proposal_id>/approve", methods=["POST"])
@blp.response(200, CatalogProposalSchema)
def approve_proposal(proposal_id):
    """One approval per region; the one that reaches the quorum applies the change."""
    access.load("catalog_proposal", proposal_id)
    ctx = domain_context()
    proposal = proposals.approve(ctx, proposal_id, region=access.principal().region, quorum=_quorum())
    return proposal_view(ctx, proposal)


@blp.route("/proposals/<string:proposal_id>/withdraw", methods=["POST"])
@blp.response(200, CatalogProposalSchema)
def withdraw_proposal(proposal_id):
    access.load("catalog_proposal", proposal_id)
    ctx = domain_context()
    return proposal_view(ctx, proposals.withdraw(ctx, proposal_id, quorum=_quorum()))
