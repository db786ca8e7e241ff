"""Public programme figures (DESIGN §8): GET /reports/programme, JSON or CSV."""
from __future__ import annotations

import csv
import io

from flask import Response, request
from marshmallow import Schema, fields, validate

from voucher_service.http.common import CSV_BOM, Blueprint, FullMatch, csv_text, domain_context
from voucher_service.ledger.amounts import yuan
from voucher_service.reports import programme as figures

URL = "/reports"
blp = Blueprint("reports", __name__, description="Public figures of the programme, from the ledger's postings")

MONTH_HELP = "YYYY-MM, a calendar month in Asia/Shanghai time"


class ProgrammeArgs(Schema):
    from_ = fields.String(data_key="from", validate=FullMatch(figures.MONTH_PATTERN, error=f"Use {MONTH_HELP}."),
                          metadata={"description": f"first month, included ({MONTH_HELP}); default: January "
                                                   "of `to`'s year", "example": "2026-01"})
    to = fields.String(validate=FullMatch(figures.MONTH_PATTERN, error=f"Use {MONTH_HELP}."),
                       metadata={"description": f"last month, included ({MONTH_HELP}); default: this month; "
                                                f"at most {figures.MAX_MONTHS} months from `from`",
                                 "example": "2026-12"})
    region = fields.String(validate=[validate.Length(min=2, max=8),
                                     FullMatch(r"^[A-Z]{2,8}$", error="Use a region code (2-8 capital letters).")],
                           metadata={"description": "keep the rows this region issued or whose provider it is "
                                                    "home to (an unknown region is 404)"})


def _fen(description: str):
    return fields.Integer(metadata={"description": description})


class FiguresSchema(Schema):
    vouchers_issued = fields.Integer(metadata={"description": "voucher.issued entries (budget:R → voucher:V)"})
    issued_fen = _fen("face value issued")
    redemptions = fields.Integer(metadata={"description": "redemption.redeemed entries (voucher:V:held → "
                                                          "payable:R:P)"})
    redeemed_fen = _fen("value redeemed: owed by the issuing region to providers")
    settled_fen = _fen("settlement.executed postings payable:R:P → paid:P, in the month of execution")
    cross_region_redeemed_fen = _fen("redeemed at providers whose home region is not the issuing region "
                                     "(the plan's own measure)")


class ProgrammeRowSchema(FiguresSchema):
    month = fields.String(metadata={"description": "YYYY-MM in Asia/Shanghai time, of the entry's ts"})
    issuing_region = fields.String(metadata={"description": "the region whose vouchers these are"})
    provider_region = fields.String(allow_none=True, metadata={
        "description": "the provider's home region; null on the row of the month's issuance, which has no "
                       "provider (its redemption and settlement figures are 0, and every other row's issuance "
                       "figures are 0)"})


class ProgrammeReportSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    region = fields.String(allow_none=True)
    timezone = fields.String()
    ledger_size = fields.Integer(metadata={"description": "the figures sum the postings of entries with "
                                                          "seq < ledger_size"})
    rows = fields.List(fields.Nested(ProgrammeRowSchema), metadata={
        "description": "only rows with a figure other than 0, ordered by month, issuing region, then provider "
                       "region (the issuance row, null, first)"})
    totals = fields.Nested(FiguresSchema)


CSV_COLUMNS = ["month", "issuing_region", "provider_region", "vouchers_issued", "issued_cny", "redemptions",
               "redeemed_cny", "settled_cny", "cross_region_redeemed_cny"]


def _csv_cells(month: str, issuing: str, provider_region: str, figures: dict) -> list:
    return [csv_text(month), csv_text(issuing), csv_text(provider_region), figures["vouchers_issued"],
            yuan(figures["issued_fen"]), figures["redemptions"], yuan(figures["redeemed_fen"]),
            yuan(figures["settled_fen"]), yuan(figures["cross_region_redeemed_fen"])]


def report_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["rows"]:
        writer.writerow(_csv_cells(row["month"], row["issuing_region"], row["provider_region"] or "", row))
    writer.writerow(_csv_cells("total", "", "", report["totals"]))
    return CSV_BOM + out.getvalue()


@blp.route("/programme")
@blp.arguments(ProgrammeArgs, location="query")
@blp.response(200, ProgrammeReportSchema, description="Per month × issuing region × provider region, with totals. "
              "Issuance has no provider: a month's vouchers issued by a region are on that region's row whose "
              "provider_region is null (an empty cell in CSV).")
@blp.alt_response(200, description="the same as CSV (UTF-8 with BOM, amounts in yuan, a last `total` row) for "
                  "Accept: text/csv", content_type="text/csv", success=True)
def programme(args):
    """Programme figures per month × issuing region × provider region

    Public. Every figure sums ledger postings of the entries below `ledger_size`:
    `voucher.issued` (budget:R → voucher:V), `redemption.redeemed` (voucher:V:held →
    payable:R:P) and `settlement.executed` (payable:R:P → paid:P), in the month
    (Asia/Shanghai) of the entry's `ts`; R is the issuing region, the provider's
    home region comes from the registry. Issuance has no provider: a region's
    vouchers issued in a month are on its row whose `provider_region` is null
    (an empty cell in CSV), and every other row has 0 issued.
    `cross_region_redeemed_fen` is what was redeemed at providers of another
    region. `Accept: text/csv` gives the rows as CSV (UTF-8 with BOM, amounts in
    yuan, a last `total` row). An unknown `region` is 404.
    """
    report = figures.programme_report(domain_context(), first=args.get("from_"), last=args.get("to"),
                                        region=args.get("region"))
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return Response(report_csv(report), mimetype="text/csv", headers={
            "Content-Disposition": f"attachment; filename=programme-{report['from']}-{report['to']}.csv"})
    return report
