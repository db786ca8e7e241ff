"""Signed reconciliation statements (DESIGN §2, §5): GET /regions/{code}/reconciliation."""
from __future__ import annotations

from contextlib import contextmanager

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validates
from sqlmodel import Session

from voucher_service.db import get_engine, get_session, is_postgres, read_only
from voucher_service.http import access
from voucher_service.http.common import Blueprint
from voucher_service.http.problems import problem
from voucher_service.journal import keys
from voucher_service.ledger.statement import sign_statement
from voucher_service.models import Region
from voucher_service.payout import reconciliation
from voucher_service.programme.errors import InvalidInput, NotFound

URL = "/regions"
blp = Blueprint("reconciliation", __name__, description="Signed reconciliation statements of a region and period")

STATEMENT_WORK_MEM = "64MB"


class ReconciliationArgs(Schema):
    period = fields.String(required=True, metadata={"description": "YYYY-MM (a month) or YYYY-Qn (a quarter), "
                                                                   "in Asia/Shanghai time",
                                                    "example": "2026-11"})

    @validates("period")
    def _period(self, value, **_kwargs):
        try:
            reconciliation.parse_statement_period(value)
        except InvalidInput as exc:
            raise ValidationError(exc.detail) from None


class StatementAsOfEndSchema(Schema):
    budget_fen = fields.Integer(metadata={"description": "budget:R at period end"})
    vouchers_available_fen = fields.Integer(metadata={"description": "sum of voucher:V of R's vouchers"})
    vouchers_held_fen = fields.Integer(metadata={"description": "sum of voucher:V:held of R's vouchers"})
    payable_fen = fields.Integer(metadata={"description": "payable:R:* — owed to providers, not yet paid"})
    paid_fen = fields.Integer(metadata={"description": "paid out by R to providers, cumulative"})


class StatementReceivablesSchema(Schema):
    opened_fen = fields.Integer(metadata={"description": "recovered after settlement: paid:P -> receivable:R:P"})
    repaid_fen = fields.Integer(metadata={"description": "repaid by providers: receivable:R:P -> budget:R"})
    offset_fen = fields.Integer(metadata={"description": "taken from R's payouts to them, net of failed lines'"})
    outstanding_fen = fields.Integer(metadata={"description": "still owed to R at the period's end"})


class StatementTotalsSchema(Schema):
    funded_fen = fields.Integer()
    issued_fen = fields.Integer()
    reserved_fen = fields.Integer(metadata={"description": "voucher:V -> voucher:V:held"})
    released_fen = fields.Integer(metadata={"description": "voucher:V:held -> voucher:V (claim lowered, cancelled, "
                                                           "rejected)"})
    redeemed_fen = fields.Integer()
    voided_fen = fields.Integer()
    expired_fen = fields.Integer()
    released_to_budget_fen = fields.Integer(metadata={"description": "released value returned to the budget because "
                                                                     "the voucher had closed"})
    settled_paid_fen = fields.Integer(metadata={"description": "payable:R:P -> paid:P"})
    payment_failed_fen = fields.Integer(metadata={"description": "paid:P -> payable:R:P: transfers the bank "
                                                                 "reported failed, owed again"})
    recovered_fen = fields.Integer(metadata={"description": "recovered (clawed back), before or after settlement"})
    receivables = fields.Nested(StatementReceivablesSchema)
    as_of_end = fields.Nested(StatementAsOfEndSchema,
                              metadata={"description": "balances at period end (ts < period_end)"})


class StatementOutstandingSchema(Schema):
    provider_region = fields.String()
    amount_fen = fields.Integer()


class StatementPositionSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    amount_fen = fields.Integer()


class StatementPositionsSchema(Schema):
    gross = fields.List(fields.Nested(StatementPositionSchema), metadata={
        "description": "redemptions redeemed in the period: issuing region -> provider's home region, both "
                       "directions for every other region"})
    net = fields.List(fields.Nested(StatementPositionSchema), metadata={
        "description": "one netted position per other region (amount 0 when they cancel out)"})
    net_fen = fields.Integer(metadata={"description": "positive: the other regions owe this one on balance"})
    within_region_fen = fields.Integer(metadata={"description": "redeemed at the region's own providers"})


class StatementCheckSchema(Schema):
    name = fields.String()
    ok = fields.Boolean()
    expected = fields.Integer()
    actual = fields.Integer()
    detail = fields.String()


class StatementLedgerSchema(Schema):
    tree_size = fields.Integer()
    root = fields.String(metadata={"description": "base64 RFC 9162 root of the tree the statement was computed at"})


class StatementSignatureSchema(Schema):
    key_id = fields.String()
    alg = fields.String()
    value = fields.String(metadata={"description": "base64 Ed25519 signature over the RFC 8785 canonical bytes of "
                                                   "the statement without `signature`"})


class StatementSchema(Schema):
    region = fields.String()
    period = fields.String()
    period_start = fields.String()
    period_end = fields.String()
    generated_at = fields.String()
    totals = fields.Nested(StatementTotalsSchema)
    outstanding_liability_fen = fields.Integer()
    outstanding_liability = fields.List(fields.Nested(StatementOutstandingSchema), metadata={
        "description": "payable at period end per provider home region"})
    positions = fields.Nested(StatementPositionsSchema)
    checks = fields.List(fields.Nested(StatementCheckSchema))
    ledger = fields.Nested(StatementLedgerSchema)
    signature = fields.Nested(StatementSignatureSchema)


@contextmanager
def snapshot():
    """A session reading one consistent state of the database for the whole statement."""
    engine = get_engine()
    with read_only(), Session(engine, expire_on_commit=False) as session:
        if is_postgres(engine):
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            # The per-account replay groups every account of the region: let the
            # hash aggregate stay in memory (for this transaction only).
            session.connection().exec_driver_sql(f"SET LOCAL work_mem = '{STATEMENT_WORK_MEM}'")
        try:
            yield session
        finally:
            session.rollback()


@blp.route("/<string:code>/reconciliation")
@blp.arguments(ReconciliationArgs, location="query")
@blp.response(200, StatementSchema)
@blp.doc(description="The region's reconciliation statement for a period, signed by its active key. Finance "
                     "officers of the region, auditors and administrators. Verify it offline with "
                     "`vouchers verify-statement FILE --keys KEYS`.")
def get_statement(args, code):
    if get_session().get(Region, code) is None:
        raise NotFound("region", f"no region {code}")
    access.check(access.Facts(region=code))
    keyring = current_app.extensions["vouchers_keyring"]
    with snapshot() as session:
        unsigned = reconciliation.build_statement(session, code, args["period"])
        # The key active in the same snapshot: valid at `generated_at`, taken after the snapshot began.
        record = keys.active_key_record(session, code)
        key_id = record.key_id if record is not None else None
    try:
        if key_id is None:
            raise keys.KeyUnavailable(f"region {code} has no active signing key")
        key = keyring.load(key_id)
    except keys.KeyUnavailable as exc:
        return problem(503, f"cannot sign the statement: {exc}")
    return sign_statement(unsigned, key)
