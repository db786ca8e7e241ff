"""A provider's payout account (DESIGN §9): /providers/{id}/payout-account.

Proposed by an officer of the home region, in effect once a *different* officer of
the home region confirms it. No response carries the number: only `account_no_masked`
(`****1234`) and `account_sha256`, against which a confirmer checks the number on the
provider's bank letter (`printf %s NUMBER | sha256sum`). The unmasked number goes to
the finance payout file only (providers.payout_accounts.accounts_for_payout).
"""
from flask import url_for
from marshmallow import Schema, fields, validate

from voucher_service.http import access
from voucher_service.http.common import Blueprint, FullMatch, ResourceSchema, Text, domain_context
from voucher_service.providers import payout_accounts

URL = "/providers"
blp = Blueprint("payout_accounts", __name__,
                description="The accounts providers are paid into: changed by two officers of the home region")


class _Account(Schema):
    account_name = fields.String()
    bank_name = fields.String()
    account_no_masked = fields.String(metadata={"description": "the number's last 4 digits only: ****1234"})
    account_sha256 = fields.String(metadata={"description": "SHA-256 (hex) of the account number's ASCII digits"})
    proposed_by = fields.String()


class AccountInEffectSchema(_Account):
    change_id = fields.String(metadata={"description": "the confirmed change that set it"})
    confirmed_by = fields.String()
    effective_at = fields.String()


class PendingChangeSchema(_Account):
    id = fields.String(metadata={"description": "name it as `change_id` when confirming"})
    proposed_at = fields.String()


class PayoutAccountStateSchema(ResourceSchema):
    provider_id = fields.String()
    in_effect = fields.Nested(AccountInEffectSchema, allow_none=True,
                              metadata={"description": "the account payouts go to; null until one is confirmed"})
    pending = fields.Nested(PendingChangeSchema, allow_none=True,
                            metadata={"description": "a proposed change awaiting another officer's confirmation"})


class PayoutAccountProposal(Schema):
    account_name = Text(200)
    bank_name = Text(200)
    account_no = fields.String(required=True, validate=FullMatch(payout_accounts.ACCOUNT_NO_PATTERN),
                               metadata={"description": "8 to 30 ASCII digits; never shown again unmasked"})


class PayoutAccountConfirmation(Schema):
    change_id = fields.String(validate=validate.Length(min=1, max=40), metadata={
        "description": "optional: the pending change reviewed; refused (409) if another has replaced it"})


def _masked(row, *names: str) -> dict | None:
    """The row as shown: `account_no` never, its mask and digest instead, with the other `names`."""
    if row is None:
        return None
    return {"account_name": row.account_name, "bank_name": row.bank_name,
            "account_no_masked": payout_accounts.masked(row.account_no), "account_sha256": row.account_sha256,
            "proposed_by": row.proposed_by, **{name: getattr(row, name) for name in names}}


def payout_account_state(ctx, provider_id: str) -> dict:
    return {"provider_id": provider_id,
            "in_effect": _masked(payout_accounts.in_effect(ctx, provider_id),
                                 "change_id", "confirmed_by", "effective_at"),
            "pending": _masked(payout_accounts.pending_change(ctx, provider_id), "id", "proposed_at")}


@blp.route("/<string:provider_id>/payout-account")
@blp.response(200, PayoutAccountStateSchema)
def get_payout_account(provider_id):
    """The account in effect and any pending change, the number masked."""
    access.load("provider", provider_id)
    return payout_account_state(domain_context(), provider_id)


@blp.route("/<string:provider_id>/payout-account", methods=["PUT"])
@blp.arguments(PayoutAccountProposal)
@blp.response(202, PayoutAccountStateSchema)
def propose_payout_account(body, provider_id):
    """202: a pending change, in effect once another officer of the home region confirms it.
    A change already pending is replaced (and its proposer's place taken by the caller)."""
    access.load("provider", provider_id)
    ctx = domain_context()
    payout_accounts.propose_payout_account(ctx, provider_id=provider_id, **body)
    location = url_for("payout_accounts.get_payout_account", provider_id=provider_id)
    return payout_account_state(ctx, provider_id), 202, {"Location": location}


@blp.route("/<string:provider_id>/payout-account/confirm", methods=["POST"])
@blp.arguments(PayoutAccountConfirmation)
@blp.response(200, PayoutAccountStateSchema)
def confirm_payout_account(body, provider_id):
    """By an officer of the home region other than the proposer (409 `four_eyes`)."""
    access.load("provider", provider_id)
    ctx = domain_context()
    payout_accounts.confirm_payout_account(ctx, provider_id=provider_id, change_id=body.get("change_id"))
    return payout_account_state(ctx, provider_id)
