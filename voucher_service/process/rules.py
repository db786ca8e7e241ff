"""Rules of the programme, one function each, named as a finance officer would.

Each raises RuleViolation(rule, detail) and changes nothing; the API turns it
into a 409 whose detail names the rule.
"""
from __future__ import annotations

from datetime import date, timedelta

from voucher_service.programme.errors import RuleViolation
from voucher_service.programme.rules import check_transition

BASIS_POINTS = 10_000

APPLICATION_TRANSITIONS = {"submitted": {"approved", "rejected"}}
REDEMPTION_TRANSITIONS = {
    "reserved": {"claimed", "cancelled", "rejected"},
    "claimed": {"confirmed", "rejected"},
    "confirmed": {"redeemed", "rejected"},
    # Recovered: money found not due comes back (DESIGN §9). (A settled redemption
    # whose payment failed goes back to redeemed: payout/rules.py's own table, so
    # that no process step, an approval say, can take that path.)
    "redeemed": {"settled", "recovered"},
    "settled": {"recovered"},
}
VOUCHER_TRANSITIONS = {
    "active": {"exhausted", "expired", "voided"},
    # Exhausted is not final: value released back to the voucher makes it spendable again.
    "exhausted": {"active", "expired", "voided"},
}
# Voided and expired are final; until then value released from a hold goes back to the voucher.
OPEN_VOUCHER_STATUSES = tuple(VOUCHER_TRANSITIONS)


def check_application_pending(status: str) -> None:
    check_transition("application", status, "approved", APPLICATION_TRANSITIONS)


def check_approved_within_requested(approved_fen: int, requested_fen: int) -> None:
    if approved_fen > requested_fen:
        raise RuleViolation(
            "approved_within_requested",
            f"approved amount: {approved_fen} fen is more than the {requested_fen} fen requested")


def check_region_budget(remaining_budget_fen: int, amount_fen: int, region: str) -> None:
    if amount_fen > remaining_budget_fen:
        raise RuleViolation(
            "region_budget",
            f"region budget: {region} has {remaining_budget_fen} fen of programme budget left, "
            f"{amount_fen} fen requested")


def check_annual_cap(granted_this_year_fen: int, amount_fen: int, cap_fen: int, kind: str, year: int) -> None:
    if granted_this_year_fen + amount_fen > cap_fen:
        raise RuleViolation(
            "annual_cap",
            f"annual cap: an {kind} may be granted at most {cap_fen} fen in {year}; "
            f"{granted_this_year_fen} fen already granted, {amount_fen} fen more would exceed it")


def max_subsidy_fen(service_fee_fen: int, ratio_bp: int) -> int:
    # Floor: the subsidy may never exceed the ratio by even one fen.
    return service_fee_fen * ratio_bp // BASIS_POINTS


def check_subsidy_ratio(amount_fen: int, service_fee_fen: int, ratio_bp: int) -> None:
    limit_fen = max_subsidy_fen(service_fee_fen, ratio_bp)
    if amount_fen > limit_fen:
        raise RuleViolation(
            "subsidy_ratio",
            f"subsidy ratio: at most {ratio_bp / 100:g}% of the {service_fee_fen} fen service fee "
            f"({limit_fen} fen) may be paid by the voucher, {amount_fen} fen requested")


def check_available_balance(amount_fen: int, available_fen: int) -> None:
    if amount_fen > available_fen:
        raise RuleViolation(
            "available_balance",
            f"available balance: the voucher has {available_fen} fen available, {amount_fen} fen requested")


def check_voucher_usable(status: str, valid_from: date, valid_until: date, today: date) -> None:
    if status != "active":
        raise RuleViolation("voucher_active", f"voucher active: the voucher is {status}")
    if not valid_from <= today <= valid_until:
        raise RuleViolation(
            "voucher_validity",
            f"voucher validity: the voucher is valid from {valid_from} until {valid_until}, today is {today}")


def check_provider_active(status: str, provider_id: str) -> None:
    if status != "active":
        raise RuleViolation("provider_active", f"provider active: provider {provider_id} is {status}")


def check_provider_not_excluded(excluded_in: frozenset[str], region: str, provider_id: str) -> None:
    """A region's exclusion (DESIGN §8) refuses only the vouchers that region issued."""
    if region in excluded_in:
        raise RuleViolation(
            "provider_excluded",
            f"provider excluded: {region} excludes provider {provider_id}; "
            f"vouchers issued by {region} may not be spent there")


def check_provider_accredited(categories: set[str], category: str, provider_id: str) -> None:
    if category not in categories:
        raise RuleViolation(
            "provider_accredited",
            f"provider accreditation: provider {provider_id} is not accredited for category '{category}'")


def check_catalog_item_active(active: bool, code: str) -> None:
    if not active:
        raise RuleViolation("catalog_item_active", f"catalogue item active: item {code} is not active")


def check_not_related_party(related_provider_ids: set[str], provider_id: str) -> None:
    if provider_id in related_provider_ids:
        raise RuleViolation(
            "related_party",
            f"related party: the enterprise and provider {provider_id} share an owner; "
            "a voucher may not be spent with a related provider")


def check_claim_not_raising(claimed_fen: int, reserved_fen: int) -> None:
    if claimed_fen > reserved_fen:
        raise RuleViolation(
            "claim_not_raising",
            f"claim may not raise the amount: {claimed_fen} fen claimed, {reserved_fen} fen reserved")


def check_voucher_voidable(status: str) -> None:
    check_transition("voucher", status, "voided", VOUCHER_TRANSITIONS,
                     refusal=f"state machine: a voucher that is '{status}' cannot be voided")


def check_no_open_redemptions(held_fen: int) -> None:
    if held_fen > 0:
        raise RuleViolation(
            "open_redemptions",
            f"open redemptions: {held_fen} fen is held by open redemptions; cancel or reject them first")


def check_validity_window(valid_from: date, valid_until: date) -> None:
    if valid_until < valid_from:
        raise RuleViolation(
            "validity_window", f"validity window: valid_until {valid_until} is before valid_from {valid_from}")


def latest_valid_until(valid_from: date, validity_days: int) -> date:
    # validity_days counts valid_from itself: 365 days from 1 January end on 31 December.
    return valid_from + timedelta(days=validity_days - 1)


def latest_extension(current_until: date, validity_days: int) -> date:
    return current_until + timedelta(days=validity_days)


def check_validity_within_policy(valid_until: date, latest_allowed: date, validity_days: int, region: str) -> None:
    if valid_until > latest_allowed:
        raise RuleViolation(
            "validity_exceeds_policy",
            f"validity exceeds policy: {region}'s policy allows vouchers {validity_days} days of validity, "
            f"so valid_until may be {latest_allowed} at the latest; {valid_until} requested")


def check_voucher_extendable(status: str) -> None:
    # Expired and voided vouchers have given their value back to the budget: extending
    # one would bring value back to life that the ledger has already returned.
    if status not in OPEN_VOUCHER_STATUSES:
        raise RuleViolation(
            "voucher_extendable",
            f"voucher extendable: a voucher that is '{status}' cannot be extended; only active or exhausted ones")


def check_extension_later(current_until: date, valid_until: date) -> None:
    if valid_until <= current_until:
        raise RuleViolation(
            "extension_after_current_end",
            f"extension after current end: the voucher is valid until {current_until}; "
            f"an extension must end later, {valid_until} requested")


# Evidence and duplicates (DESIGN §9).
REQUIRED_EVIDENCE = ("contract", "invoice")
# A cancelled or rejected redemption is closed: evidence for it would evidence nothing.
DOCUMENTS_CLOSED_STATUSES = ("cancelled", "rejected")


def check_documents_accepted(status: str, redemption_id: str) -> None:
    if status in DOCUMENTS_CLOSED_STATUSES:
        raise RuleViolation(
            "documents_accepted",
            f"documents accepted: redemption {redemption_id} is {status} and takes no more documents")


def check_document_not_attached(attached_as: str | None, sha256: str) -> None:
    if attached_as is not None:
        raise RuleViolation(
            "document_not_attached",
            f"document not attached already: document {sha256} is already attached to this redemption "
            f"as its {attached_as}")


def check_evidence_present(kinds: set[str]) -> None:
    missing = [kind for kind in REQUIRED_EVIDENCE if kind not in kinds]
    if missing:
        raise RuleViolation(
            "evidence_missing",
            "evidence missing: a claim needs a contract and an invoice document on the redemption; "
            f"missing: {', '.join(missing)} (POST /redemptions/{{id}}/documents)")


def check_invoice_not_claimed(other_redemption_id: str | None, invoice_no: str, provider_id: str) -> None:
    if other_redemption_id is not None:
        raise RuleViolation(
            "duplicate_invoice",
            f"duplicate invoice: provider {provider_id} has already claimed invoice {invoice_no} "
            f"for redemption {other_redemption_id}")


def check_documents_not_reused(reused: dict[str, str]) -> None:
    """`reused`: sha256 of each document of the claim that evidences another live claim -> that redemption."""
    if reused:
        sha256, other = sorted(reused.items())[0]
        raise RuleViolation(
            "duplicate_document",
            f"duplicate document: document {sha256} already evidences the claim of redemption {other}")
