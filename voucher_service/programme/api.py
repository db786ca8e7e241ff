"""Regions of the scheme and the policy each applies."""
from marshmallow import Schema, fields
from sqlmodel import select

from voucher_service.http.common import Blueprint, domain_context
from voucher_service.models import Policy, Region
from voucher_service.programme import budgets, errors, regions

URL = "/regions"
blp = Blueprint("regions", __name__, description="Regions of the scheme and their versioned policies")


class PolicySchema(Schema):
    effective_from = fields.Date()
    enterprise_cap_fen = fields.Integer()
    team_cap_fen = fields.Integer()
    subsidy_ratio_bp = fields.Integer(metadata={"description": "basis points: 5000 = 50%"})
    validity_days = fields.Integer()
    payout_cycle = fields.String(metadata={"enum": ["monthly", "quarterly"]})
    budget_fen = fields.Integer(metadata={"description": "programme budget funded under this policy"})


class RegionSchema(Schema):
    code = fields.String()
    name_zh = fields.String()
    name_en = fields.String()
    currency = fields.String()
    timezone = fields.String()
    policy = fields.Nested(PolicySchema, allow_none=True, metadata={"description": "the policy in effect today"})
    policies = fields.List(fields.Nested(PolicySchema))
    budget_remaining_fen = fields.Integer()


def region_view(ctx, region: Region) -> dict:
    policies = ctx.session.exec(select(Policy).where(Policy.region == region.code)
                                .order_by(Policy.effective_from)).all()
    try:
        current = regions.policy_in_effect(ctx, region.code)
    except errors.RuleViolation:
        current = None
    return {**region.model_dump(), "policy": current, "policies": policies,
            "budget_remaining_fen": budgets.budget_remaining_fen(ctx, region.code)}


@blp.route("")
@blp.response(200, RegionSchema(many=True))
def list_regions():
    ctx = domain_context()
    return [region_view(ctx, region) for region in ctx.session.exec(select(Region).order_by(Region.code)).all()]


@blp.route("/<string:code>")
@blp.response(200, RegionSchema)
def get_region(code):
    ctx = domain_context()
    return region_view(ctx, regions.get_region(ctx, code))
