"""What a provider pays back after a recovery (DESIGN §9), recorded by finance."""
from marshmallow import Schema, fields

from voucher_service.http import access
from voucher_service.http.common import Blueprint, Fen, ResourceSchema, Text, domain_context
from voucher_service.payout import recoveries

URL = "/providers"
blp = Blueprint("repayments", __name__, description="Repayments of what providers owe back after recoveries")


class RepaymentBody(Schema):
    amount_fen = Fen(required=True, metadata={"description": "at most what the provider owes the region, less "
                                                            "what live batches already plan to offset"})
    reference = Text(200, metadata={"description": "the bank reference of the provider's transfer"})


class RepaymentSchema(ResourceSchema):
    provider_id = fields.String()
    region = fields.String(metadata={"description": "the region repaid: the finance officer's own"})
    amount_fen = fields.Integer()
    reference = fields.String()
    receivable_fen = fields.Integer(metadata={"description": "what the provider still owes the region"})


@blp.route("/<string:provider_id>/repayments", methods=["POST"])
@blp.arguments(RepaymentBody)
@blp.response(201, RepaymentSchema)
def repay(body, provider_id):
    # Repaid to the finance officer's own region, into its budget.
    region = access.principal().region
    ctx = domain_context()
    recoveries.repay(ctx, provider_id, region=region, **body)
    return {"provider_id": provider_id, "region": region, **body,
            "receivable_fen": recoveries.open_receivable_fen(ctx, region, provider_id)}, 201
