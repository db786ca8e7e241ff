"""Cross-region settlement (资金兑现统一): batches, four-eyes approvals, payout files."""
from __future__ import annotations

import csv
import io

from flask import Response, request, url_for
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlmodel import select

from voucher_service.http import access
from voucher_service.http.common import (
    CSV_BOM,
    Blueprint,
    FullMatch,
    PageArgs,
    ResourceSchema,
    Text,
    csv_text,
    domain_context,
    page,
    page_schema,
    where_equal,
)
from voucher_service.ledger.amounts import yuan
from voucher_service.models import Provider, Settlement
from voucher_service.payout import periods, results
from voucher_service.payout import settlement as settlements
from voucher_service.providers import payout_accounts

URL = "/settlements"
blp = Blueprint("settlements", __name__, description="Cross-region settlement batches and payout files")

STATUSES = ["draft", "approved", "executed", "completed", "cancelled"]
RESULTS = ["paid", "failed"]


class LineSchema(Schema):
    region = fields.String(metadata={"description": "the issuing region, which pays"})
    provider_id = fields.String()
    provider_region = fields.String()
    amount_fen = fields.Integer(metadata={"description": "gross: what the line's redemptions are owed"})
    offset_fen = fields.Integer(metadata={"description": "taken from what the provider owes the region back"})
    net_fen = fields.Integer(metadata={"description": "amount_fen - offset_fen: what the bank transfers"})
    redemption_count = fields.Integer()
    redemption_ids = fields.List(fields.String())
    result = fields.String(allow_none=True, metadata={"enum": RESULTS, "description": "the bank's answer"})
    bank_reference = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    result_at = fields.String(allow_none=True)


class PositionSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    amount_fen = fields.Integer()


class ApprovalSchema(Schema):
    region = fields.String()
    principal_id = fields.String()
    approved_at = fields.String()


class SettlementSchema(ResourceSchema):
    id = fields.String()
    region = fields.String()
    period = fields.String()
    period_start = fields.String()
    period_end = fields.String()
    status = fields.String(metadata={"enum": STATUSES})
    total_fen = fields.Integer()
    lines = fields.List(fields.Nested(LineSchema))
    positions = fields.List(fields.Nested(PositionSchema))
    approvals = fields.List(fields.Nested(ApprovalSchema))
    approvals_required = fields.List(fields.String())
    created_by = fields.String()
    created_at = fields.String()
    approved_at = fields.String(allow_none=True)
    executed_at = fields.String(allow_none=True)
    completed_at = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class SettlementCreate(Schema):
    period = fields.String(required=True, validate=[
        validate.Length(equal=7), FullMatch(periods.PERIOD_PATTERN,
                                                  error="Use YYYY-MM (a month) or YYYY-Qn (a quarter).")])


class SettlementCancel(Schema):
    reason = Text(500)


class LineResult(Schema):
    provider_id = Text(40)
    result = fields.String(required=True, validate=validate.OneOf(RESULTS))
    bank_reference = Text(100, required=False, metadata={"description": "required when paid"})
    reason = Text(500, required=False, metadata={"description": "required when failed"})

    @validates_schema
    def _detail_of_result(self, data, **_kwargs):
        needed = "bank_reference" if data.get("result") == "paid" else "reason"
        if data.get("result") and not data.get(needed):
            raise ValidationError(f"a {data['result']} line needs its {needed}", needed)


class SettlementResults(Schema):
    results = fields.List(fields.Nested(LineResult), required=True, validate=validate.Length(min=1, max=10_000))

    @validates_schema
    def _one_result_a_line(self, data, **_kwargs):
        # Two results for one line in one request is a mistake in the bank file, not a
        # result already recorded: say so before the service reads the lines.
        seen = set()
        for position, result in enumerate(data.get("results", [])):
            provider_id = result.get("provider_id")
            if provider_id in seen:
                raise ValidationError(f"provider {provider_id} has more than one result in this request",
                                      f"results.{position}.provider_id")
            seen.add(provider_id)


class SettlementListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    period = fields.String(validate=validate.Length(max=7))


class PayoutSchema(LineSchema):
    provider_name = fields.String()
    uscc = fields.String()
    paying_region = fields.String()
    account_name = fields.String(allow_none=True, metadata={"description": "the payout account in effect"})
    bank_name = fields.String(allow_none=True)
    account_no = fields.String(allow_none=True, metadata={
        "description": "in full for finance officers of the paying region only; masked (****1234) otherwise; "
                       "null when the provider has no confirmed payout account"})


class PayoutFileSchema(Schema):
    settlement_id = fields.String()
    period = fields.String()
    status = fields.String()
    total_fen = fields.Integer()
    payouts = fields.List(fields.Nested(PayoutSchema))


def line_view(line) -> dict:
    return {"provider_id": line.provider_id, "provider_region": line.provider_region, "amount_fen": line.amount_fen,
            "offset_fen": line.offset_fen, "net_fen": line.amount_fen - line.offset_fen,
            "redemption_count": line.redemption_count, "result": line.result, "bank_reference": line.bank_reference,
            "failure_reason": line.failure_reason, "result_at": line.result_at}


def settlement_view(ctx, settlement: Settlement) -> dict:
    lines = settlements.lines_of(ctx, settlement.id)
    ids = settlements.redemption_ids_by_provider(ctx, settlement.id)
    return {**settlement.model_dump(),
            "lines": [{"region": settlement.region, **line_view(l), "redemption_ids": ids.get(l.provider_id, [])}
                      for l in lines],
            "positions": settlements.positions_of(settlement, lines),
            "approvals": settlements.approvals_of(ctx, settlement.id),
            "approvals_required": settlements.regions_touched(settlement, lines)}


def _load(settlement_id: str):
    settlement = access.load("settlement", settlement_id)
    return domain_context(), settlement


@blp.route("", methods=["POST"])
@blp.arguments(SettlementCreate)
@blp.response(201, SettlementSchema)
def create(body):
    ctx = domain_context()
    # A batch is created by, and pays from, the finance officer's own region.
    created = settlements.create_settlement(ctx, region=access.principal().region, period_label=body["period"])
    return (settlement_view(ctx, created), 201,
            {"Location": url_for("settlements.get_settlement", settlement_id=created.id)})


@blp.route("")
@blp.arguments(SettlementListArgs, location="query")
@blp.response(200, page_schema(SettlementSchema, "SettlementPage"))
def list_settlements(args):
    ctx = domain_context()
    query = access.visible("settlement", select(Settlement))
    query = where_equal(query, Settlement, args, ("status", "period"))
    result = page(query, Settlement.id, args)
    result["items"] = [settlement_view(ctx, s) for s in result["items"]]
    return result


@blp.route("/<string:settlement_id>")
@blp.response(200, SettlementSchema)
def get_settlement(settlement_id):
    ctx, settlement = _load(settlement_id)
    return settlement_view(ctx, settlement)


@blp.route("/<string:settlement_id>/approve", methods=["POST"])
@blp.response(200, SettlementSchema)
def approve(settlement_id):
    ctx, _settlement = _load(settlement_id)
    approver_region = access.principal().region
    return settlement_view(ctx, settlements.approve_settlement(ctx, settlement_id, approver_region=approver_region))


@blp.route("/<string:settlement_id>/execute", methods=["POST"])
@blp.response(200, SettlementSchema)
def execute(settlement_id):
    ctx, _settlement = _load(settlement_id)
    return settlement_view(ctx, settlements.execute_settlement(ctx, settlement_id))


@blp.route("/<string:settlement_id>/cancel", methods=["POST"])
@blp.arguments(SettlementCancel)
@blp.response(200, SettlementSchema)
def cancel(body, settlement_id):
    ctx, _settlement = _load(settlement_id)
    return settlement_view(ctx, settlements.cancel_settlement(ctx, settlement_id, **body))


@blp.route("/<string:settlement_id>/results", methods=["POST"])
@blp.arguments(SettlementResults)
@blp.response(200, SettlementSchema)
def record_results(body, settlement_id):
    """The bank's answer per line: paid (bank_reference) or failed (reason). A failed line's
    redemptions go back to `redeemed` for the next batch; every line answered: `completed`."""
    ctx, _settlement = _load(settlement_id)
    return settlement_view(ctx, results.record_results(ctx, settlement_id, body["results"]))


def payout_rows(ctx, settlement: Settlement) -> list[dict]:
    ids = settlements.redemption_ids_by_provider(ctx, settlement.id)
    lines = settlements.lines_of(ctx, settlement.id)
    accounts = payout_accounts.accounts_for_payout(ctx, [line.provider_id for line in lines])
    in_full = access.may_see("settlements.payouts:account_no", access.Facts(region=settlement.region))
    rows = []
    for line in lines:
        provider = ctx.session.get(Provider, line.provider_id)
        account = accounts.get(line.provider_id)
        bank = ({"account_name": account.account_name, "bank_name": account.bank_name,
                 "account_no": account.account_no if in_full else payout_accounts.masked(account.account_no)}
                if account else {"account_name": None, "bank_name": None, "account_no": None})
        rows.append({**line_view(line), "provider_name": provider.name, "uscc": provider.uscc,
                     "paying_region": settlement.region, "redemption_ids": ids.get(line.provider_id, []), **bank})
    return rows



def payouts_csv(settlement: Settlement, rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["settlement_id", "period", "paying_region", "provider_id", "provider_name", "uscc",
                     "provider_region", "amount_cny", "redemption_count", "gross_fen", "offset_fen", "net_fen",
                     "result", "bank_reference", "account_name", "bank_name", "account_no"])
    for row in rows:
        # amount_cny is what the bank transfers: the net, in yuan.
        writer.writerow([settlement.id, settlement.period, row["paying_region"], row["provider_id"],
                         csv_text(row["provider_name"]), row["uscc"], row["provider_region"], yuan(row["net_fen"]),
                         row["redemption_count"], row["amount_fen"], row["offset_fen"], row["net_fen"],
                         row["result"] or "", csv_text(row["bank_reference"] or ""),
                         csv_text(row["account_name"] or ""), csv_text(row["bank_name"] or ""),
                         csv_text(row["account_no"] or "")])
    return CSV_BOM + out.getvalue()


@blp.route("/<string:settlement_id>/payouts")
@blp.response(200, PayoutFileSchema)
@blp.alt_response(200, description="the same as CSV (UTF-8 with BOM, amounts in yuan) for Accept: text/csv",
                  content_type="text/csv", success=True)
def payouts(settlement_id):
    ctx, settlement = _load(settlement_id)
    rows = payout_rows(ctx, settlement)
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return Response(payouts_csv(settlement, rows), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=payouts-{settlement.id}.csv"})
    return {"settlement_id": settlement.id, "period": settlement.period, "status": settlement.status,
            "total_fen": settlement.total_fen, "payouts": rows}
