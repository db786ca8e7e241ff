"""Every rule of the programme in isolation: allowed at the boundary, refused one fen past it."""
from datetime import date, timedelta

import pytest

from voucher_service.process import rules
from voucher_service.programme.errors import RuleViolation


def refused(rule_name, fn, *args):
    with pytest.raises(RuleViolation) as caught:
        fn(*args)
    assert caught.value.rule == rule_name
    return caught.value.detail


def test_region_budget_allows_exactly_the_remainder():
    rules.check_region_budget(1000, 1000, "KS")
    detail = refused("region_budget", rules.check_region_budget, 1000, 1001, "KS")
    assert "region budget" in detail and "KS" in detail


def test_annual_cap_counts_what_was_already_granted():
    rules.check_annual_cap(200, 800, 1000, "enterprise", 2026)
    detail = refused("annual_cap", rules.check_annual_cap, 201, 800, 1000, "team", 2026)
    assert "annual cap" in detail and "team" in detail and "2026" in detail


def test_approved_amount_may_not_exceed_the_request():
    rules.check_approved_within_requested(500, 500)
    refused("approved_within_requested", rules.check_approved_within_requested, 501, 500)


@pytest.mark.parametrize("fee, ratio_bp, limit", [(1000, 5000, 500), (999, 5000, 499), (1, 5000, 0),
                                                   (10_000, 3000, 3000), (333, 4000, 133)])
def test_subsidy_ratio_floors_to_the_fen(fee, ratio_bp, limit):
    assert rules.max_subsidy_fen(fee, ratio_bp) == limit
    if limit:
        rules.check_subsidy_ratio(limit, fee, ratio_bp)
    detail = refused("subsidy_ratio", rules.check_subsidy_ratio, limit + 1, fee, ratio_bp)
    assert "subsidy ratio" in detail


def test_available_balance():
    rules.check_available_balance(10, 10)
    refused("available_balance", rules.check_available_balance, 11, 10)


def test_voucher_must_be_active_and_within_its_validity():
    start, end = date(2026, 1, 1), date(2026, 12, 31)
    rules.check_voucher_usable("active", start, end, start)
    rules.check_voucher_usable("active", start, end, end)
    refused("voucher_validity", rules.check_voucher_usable, "active", start, end, date(2027, 1, 1))
    refused("voucher_validity", rules.check_voucher_usable, "active", start, end, date(2025, 12, 31))
    for status in ("exhausted", "expired", "voided"):
        refused("voucher_active", rules.check_voucher_usable, status, start, end, start)


def test_provider_must_be_active_and_accredited():
    rules.check_provider_active("active", "p")
    refused("provider_active", rules.check_provider_active, "suspended", "p")
    rules.check_provider_accredited({"testing", "ip"}, "ip", "p")
    refused("provider_accredited", rules.check_provider_accredited, {"testing"}, "ip", "p")


def test_an_exclusion_refuses_the_excluding_regions_vouchers_only():
    rules.check_provider_not_excluded(frozenset(), "KS", "p")
    rules.check_provider_not_excluded(frozenset({"SH", "WJ"}), "KS", "p")
    detail = refused("provider_excluded", rules.check_provider_not_excluded, frozenset({"KS"}), "KS", "p")
    assert detail.startswith("provider excluded: KS excludes provider p")


def test_related_party_is_refused():
    rules.check_not_related_party({"a"}, "b")
    assert "related party" in refused("related_party", rules.check_not_related_party, {"a", "b"}, "b")


def test_catalogue_item_must_be_active():
    rules.check_catalog_item_active(True, "TS-01")
    refused("catalog_item_active", rules.check_catalog_item_active, False, "TS-01")


def test_claim_may_lower_never_raise():
    rules.check_claim_not_raising(100, 100)
    rules.check_claim_not_raising(1, 100)
    refused("claim_not_raising", rules.check_claim_not_raising, 101, 100)


def test_void_needs_no_open_redemptions():
    rules.check_no_open_redemptions(0)
    refused("open_redemptions", rules.check_no_open_redemptions, 1)


def test_validity_window():
    rules.check_validity_window(date(2026, 1, 1), date(2026, 1, 1))
    refused("validity_window", rules.check_validity_window, date(2026, 1, 2), date(2026, 1, 1))


@pytest.mark.parametrize("current, target", [
    ("reserved", "claimed"), ("reserved", "cancelled"), ("reserved", "rejected"), ("claimed", "confirmed"),
    ("claimed", "rejected"), ("confirmed", "redeemed"), ("confirmed", "rejected")])
def test_redemption_transitions_allowed(current, target):
    rules.check_transition("redemption", current, target, rules.REDEMPTION_TRANSITIONS)


@pytest.mark.parametrize("current, target", [
    ("reserved", "redeemed"), ("reserved", "confirmed"), ("claimed", "cancelled"), ("claimed", "redeemed"),
    ("confirmed", "cancelled"), ("redeemed", "rejected"), ("cancelled", "claimed"), ("rejected", "claimed"),
    ("redeemed", "cancelled")])
def test_redemption_transitions_refused(current, target):
    detail = refused("state_machine", rules.check_transition, "redemption", current, target,
                     rules.REDEMPTION_TRANSITIONS)
    assert current in detail and target in detail


def test_application_decided_once():
    rules.check_application_pending("submitted")
    for status in ("approved", "rejected"):
        refused("state_machine", rules.check_application_pending, status)


@pytest.mark.parametrize("status", ["active", "exhausted"])
def test_an_open_voucher_may_be_voided(status):
    rules.check_voucher_voidable(status)


@pytest.mark.parametrize("status", ["voided", "expired"])
def test_a_closed_voucher_may_not_be_voided(status):
    detail = refused("state_machine", rules.check_voucher_voidable, status)
    assert detail == f"state machine: a voucher that is '{status}' cannot be voided"


@pytest.mark.parametrize("current, target", [
    ("active", "exhausted"), ("active", "expired"), ("active", "voided"),
    ("exhausted", "active"), ("exhausted", "expired"), ("exhausted", "voided")])
def test_voucher_transitions_allowed(current, target):
    rules.check_transition("voucher", current, target, rules.VOUCHER_TRANSITIONS)


@pytest.mark.parametrize("current, target", [
    ("voided", "active"), ("expired", "active"), ("voided", "expired"), ("expired", "voided"),
    ("expired", "exhausted"), ("active", "active")])
def test_voucher_transitions_refused(current, target):
    detail = refused("state_machine", rules.check_transition, "voucher", current, target,
                     rules.VOUCHER_TRANSITIONS)
    assert detail == f"state machine: voucher is '{current}' and cannot become '{target}'"


def test_open_vouchers_are_those_not_yet_voided_or_expired():
    assert set(rules.OPEN_VOUCHER_STATUSES) == {"active", "exhausted"}


def test_validity_days_count_the_first_day():
    assert rules.latest_valid_until(date(2026, 1, 1), 365) == date(2026, 12, 31)
    assert rules.latest_valid_until(date(2026, 1, 1), 1) == date(2026, 1, 1)
    assert rules.latest_extension(date(2026, 12, 31), 365) == date(2027, 12, 31)


def test_validity_may_reach_the_policys_last_day_and_not_one_more():
    latest = rules.latest_valid_until(date(2026, 1, 1), 180)
    rules.check_validity_within_policy(latest, latest, 180, "WJ")
    detail = refused("validity_exceeds_policy", rules.check_validity_within_policy,
                     latest + timedelta(days=1), latest, 180, "WJ")
    assert "validity exceeds policy" in detail and "180 days" in detail and str(latest) in detail


@pytest.mark.parametrize("status", ["active", "exhausted"])
def test_open_vouchers_may_be_extended(status):
    rules.check_voucher_extendable(status)


@pytest.mark.parametrize("status", ["expired", "voided"])
def test_closed_vouchers_may_not_be_extended(status):
    detail = refused("voucher_extendable", rules.check_voucher_extendable, status)
    assert status in detail


def test_an_extension_must_end_after_the_current_end():
    end = date(2026, 12, 31)
    rules.check_extension_later(end, end + timedelta(days=1))
    for valid_until in (end, end - timedelta(days=1)):
        detail = refused("extension_after_current_end", rules.check_extension_later, end, valid_until)
        assert str(end) in detail


# --- evidence and duplicates (DESIGN §9) ----------------------------------------------

def _words(rule_name, detail):
    assert detail.lower().startswith(rule_name.replace("_", " ")), detail


def test_a_claim_needs_a_contract_and_an_invoice():
    rules.check_evidence_present({"contract", "invoice"})
    rules.check_evidence_present({"contract", "invoice", "acceptance"})
    for kinds, missing in (({"contract"}, "invoice"), ({"invoice", "payment_proof"}, "contract"),
                           (set(), "contract, invoice")):
        detail = refused("evidence_missing", rules.check_evidence_present, kinds)
        _words("evidence_missing", detail)
        assert f"missing: {missing}" in detail


def test_an_invoice_number_of_a_live_claim_is_refused():
    rules.check_invoice_not_claimed(None, "INV-1", "prv-sh-001")
    detail = refused("duplicate_invoice", rules.check_invoice_not_claimed, "rdm_1", "INV-1", "prv-sh-001")
    _words("duplicate_invoice", detail)
    assert "INV-1" in detail and "rdm_1" in detail and "prv-sh-001" in detail


def test_a_document_evidences_one_claim():
    rules.check_documents_not_reused({})
    detail = refused("duplicate_document", rules.check_documents_not_reused, {"b" * 64: "rdm_2", "a" * 64: "rdm_1"})
    _words("duplicate_document", detail)
    assert "a" * 64 in detail and "rdm_1" in detail  # the first, in sha256 order


@pytest.mark.parametrize("status", ["reserved", "claimed", "confirmed", "redeemed", "settled"])
def test_open_and_paid_redemptions_take_documents(status):
    rules.check_documents_accepted(status, "rdm_1")


@pytest.mark.parametrize("status", ["cancelled", "rejected"])
def test_closed_redemptions_take_no_documents(status):
    _words("documents_accepted", refused("documents_accepted", rules.check_documents_accepted, status, "rdm_1"))


def test_a_document_is_attached_once():
    rules.check_document_not_attached(None, "a" * 64)
    detail = refused("document_not_attached", rules.check_document_not_attached, "contract", "a" * 64)
    _words("document_not_attached", detail)
    assert "contract" in detail
