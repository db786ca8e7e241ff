"""Regions of the scheme, the policy each applies and its yearly budget."""
from flask import current_app, url_for
from marshmallow import Schema, fields, validate
from sqlmodel import select

from voucher_service.http import access
from voucher_service.http.common import Blueprint, Fen, FullMatch, ResourceSchema, Text, domain_context
from voucher_service.models import Policy, Region
from voucher_service.programme import budgets, errors, regions

URL = "/regions"
blp = Blueprint("regions", __name__, description="Regions of the scheme, their versioned policies and budgets")

CODE = FullMatch(r"^[A-Z]{2,8}$", error="Use 2-8 capital letters (SH, KS, WJ, ...).")
PAYOUT_CYCLES = ["monthly", "quarterly"]


class PolicySchema(Schema):
    effective_from = fields.Date()
    enterprise_cap_fen = fields.Integer()
    team_cap_fen = fields.Integer()
    subsidy_ratio_bp = fields.Integer(metadata={"description": "basis points: 5000 = 50%"})
    validity_days = fields.Integer()
    payout_cycle = fields.String(metadata={"enum": PAYOUT_CYCLES})
    budget_fen = fields.Integer(metadata={"description": "the budget the policy plans for a fiscal year; money "
                                                         "enters the budget only when finance funds it"})


class AdoptedPolicySchema(PolicySchema, ResourceSchema):
    pass


class PolicyBody(Schema):
    effective_from = fields.Date(required=True, metadata={
        "description": "first day it applies (Asia/Shanghai); for an existing region after today"})
    enterprise_cap_fen = Fen(required=True, metadata={"description": "an enterprise's annual cap, fen"})
    team_cap_fen = Fen(required=True, metadata={"description": "a team's annual cap, fen"})
    subsidy_ratio_bp = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000),
                                      metadata={"description": "basis points: 5000 = 50%"})
    validity_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=3660))
    payout_cycle = fields.String(required=True, validate=validate.OneOf(PAYOUT_CYCLES))
    budget_fen = Fen(minimum=0, required=True)


class RegionSchema(ResourceSchema):
    code = fields.String()
    name_zh = fields.String()
    name_en = fields.String()
    currency = fields.String()
    timezone = fields.String()
    policy = fields.Nested(PolicySchema, allow_none=True, metadata={"description": "the policy in effect today"})
    policies = fields.List(fields.Nested(PolicySchema))
    budget_remaining_fen = fields.Integer()


class RegionCreate(Schema):
    code = fields.String(required=True, validate=CODE)
    name_zh = Text(100)
    name_en = Text(100)
    policy = fields.Nested(PolicyBody, required=True, metadata={
        "description": "its first policy; its budget_fen is funded at once"})


class BudgetFund(Schema):
    amount_fen = Fen(required=True)
    fiscal_year = fields.Integer(required=True, strict=True, validate=validate.Range(min=2000, max=9999),
                                 metadata={"description": "the current fiscal (calendar) year, Asia/Shanghai"})
    reference = Text(200, metadata={"description": "the appropriation's document number, for the audit trail"})


class BudgetYearSchema(Schema):
    fiscal_year = fields.Integer()
    carried_over_fen = fields.Integer(metadata={"description": "left unspent at the end of the year before"})
    funded_fen = fields.Integer(metadata={"description": "funded from the region's treasury in the year"})
    granted_fen = fields.Integer(metadata={"description": "granted as vouchers in the year"})
    returned_fen = fields.Integer(metadata={"description": "given back by vouchers voided or expired in the year"})
    remaining_fen = fields.Integer(metadata={
        "description": "carried_over + funded + returned - granted; carried over into the next year"})


class FundingSchema(Schema):
    seq = fields.Integer()
    fiscal_year = fields.Integer()
    amount_fen = fields.Integer()
    reference = fields.String(allow_none=True)
    funded_at = fields.String()
    funded_by = fields.String()


class BudgetSchema(ResourceSchema):
    region = fields.String()
    remaining_fen = fields.Integer(metadata={"description": "the balance of budget:{region} now"})
    years = fields.List(fields.Nested(BudgetYearSchema))
    fundings = fields.List(fields.Nested(FundingSchema))


def region_view(ctx, region: Region) -> dict:
    policies = ctx.session.exec(select(Policy).where(Policy.region == region.code)
                                .order_by(Policy.effective_from)).all()
    try:
        current = regions.policy_in_effect(ctx, region.code)
    except errors.RuleViolation:
        current = None
    return {**region.model_dump(), "policy": current, "policies": policies,
            "budget_remaining_fen": budgets.budget_remaining_fen(ctx, region.code)}


def budget_view(ctx, code: str) -> dict:
    years = [{**vars(year), "remaining_fen": year.remaining_fen} for year in budgets.budget_years(ctx, code)]
    return {"region": code, "remaining_fen": budgets.budget_remaining_fen(ctx, code), "years": years,
            "fundings": budgets.fundings(ctx, code)}


@blp.route("")
@blp.response(200, RegionSchema(many=True))
def list_regions():
    ctx = domain_context()
    return [region_view(ctx, region) for region in ctx.session.exec(select(Region).order_by(Region.code)).all()]


@blp.route("", methods=["POST"])
@blp.arguments(RegionCreate)
@blp.response(201, RegionSchema)
def create_region(body):
    ctx = domain_context()
    region = regions.join_scheme(ctx, current_app.extensions["vouchers_keyring"], code=body["code"],
                                 name_zh=body["name_zh"], name_en=body["name_en"], policies=[body["policy"]],
                                 origin=current_app.config["VOUCHERS_LEDGER_ORIGIN"])
    return region_view(ctx, region), 201, {"Location": url_for("regions.get_region", code=region.code)}


@blp.route("/<string:code>")
@blp.response(200, RegionSchema)
def get_region(code):
    ctx = domain_context()
    return region_view(ctx, regions.get_region(ctx, code))


@blp.route("/<string:code>/policies", methods=["POST"])
@blp.arguments(PolicyBody)
@blp.response(201, AdoptedPolicySchema)
def adopt_policy(body, code):
    access.check(access.Facts(region=code))
    policy = regions.adopt_future_policy(domain_context(), code, **body)
    return policy, 201, {"Location": url_for("regions.get_region", code=code)}


@blp.route("/<string:code>/budget", methods=["POST"])
@blp.arguments(BudgetFund)
@blp.response(201, BudgetSchema)
def fund_budget(body, code):
    access.check(access.Facts(region=code))
    ctx = domain_context()
    regions.get_region(ctx, code)
    budgets.fund_budget(ctx, code, body["amount_fen"], fiscal_year=body["fiscal_year"], reference=body["reference"])
    return budget_view(ctx, code), 201, {"Location": url_for("regions.get_budget", code=code)}


@blp.route("/<string:code>/budget")
@blp.response(200, BudgetSchema)
def get_budget(code):
    access.check(access.Facts(region=code))
    ctx = domain_context()
    regions.get_region(ctx, code)
    return budget_view(ctx, code)
