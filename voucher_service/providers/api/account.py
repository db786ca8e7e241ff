"""A provider's own view (DESIGN §9): GET /providers/{id}/account.

From the ledger's balances (providers/account.py): owed by each region, paid,
owed back, the batches' payout lines, and the payout account, masked.
"""
from dataclasses import asdict

from marshmallow import Schema, fields

from voucher_service.http import access
from voucher_service.http.common import Blueprint, ResourceSchema, domain_context
from voucher_service.providers import account as accounts
from voucher_service.providers.api.payout_accounts import PayoutAccountStateSchema, payout_account_state

URL = "/providers"
blp = Blueprint("provider_account", __name__, description="What a provider is owed, was paid and owes back")

_REGION_AMOUNT = {"region": fields.String(), "amount_fen": fields.Integer()}


class PayoutLineSchema(Schema):
    settlement_id = fields.String()
    region = fields.String(metadata={"description": "the paying region"})
    period = fields.String()
    status = fields.String(metadata={"description": "the batch's status"})
    amount_fen = fields.Integer(metadata={"description": "gross"})
    redemption_count = fields.Integer()
    offset_fen = fields.Integer(metadata={"description": "taken from what the provider owed the region back"})
    net_fen = fields.Integer(metadata={"description": "amount_fen - offset_fen: transferred"})
    result = fields.String(allow_none=True, metadata={"description": "the bank's: paid, failed, or null"})


class ProviderAccountSchema(ResourceSchema):
    provider_id = fields.String()
    region = fields.String(metadata={"description": "the provider's home region"})
    owed_fen = fields.Integer(metadata={"description": "sum of `owed`: redeemed, not yet paid"})
    owed = fields.List(fields.Nested(Schema.from_dict(_REGION_AMOUNT, name="OwedByRegion")), metadata={
        "description": "balance of payable:{R}:{P} for every region that has owed the provider"})
    paid_fen = fields.Integer(metadata={"description": "balance of paid:{P}"})
    receivable_fen = fields.Integer(metadata={"description": "sum of `receivable`: owed back after recoveries"})
    receivable = fields.List(fields.Nested(Schema.from_dict(_REGION_AMOUNT, name="ReceivableByRegion")),
                             metadata={"description": "balance of receivable:{R}:{P} by region"})
    payout_lines = fields.List(fields.Nested(PayoutLineSchema))
    payout_account = fields.Nested(PayoutAccountStateSchema)


def _by_region(amounts: dict[str, int]) -> list[dict]:
    return [{"region": region, "amount_fen": amount} for region, amount in amounts.items()]


@blp.route("/<string:provider_id>/account")
@blp.response(200, ProviderAccountSchema)
def get_account(provider_id):
    access.load("provider", provider_id)
    ctx = domain_context()
    view = accounts.provider_account(ctx, provider_id)
    return {"provider_id": view.provider_id, "region": view.region, "owed_fen": view.owed_fen,
            "owed": _by_region(view.owed), "paid_fen": view.paid_fen, "receivable_fen": view.receivable_fen,
            "receivable": _by_region(view.receivable),
            "payout_lines": [{**asdict(line), "net_fen": line.net_fen} for line in view.payout_lines],
            "payout_account": payout_account_state(ctx, provider_id)}
