"""The statement's checks: the ledger against the stored balances and the business tables.

Each check names what it compares, expected (the ledger) against actual; an
auditor reads a failing one without the code, so its detail names the
accounts or vouchers that disagree, a few at most.
"""
from __future__ import annotations

from sqlmodel import Session

from voucher_service.journal.integrity_scan import Scan
from voucher_service.ledger.accounts import budget_account, payable_prefix
from voucher_service.models import Account
from voucher_service.payout.reconciliation import queries
from voucher_service.payout.reconciliation.flows import ALWAYS_POSTING_KINDS
from voucher_service.payout.reconciliation.totals import payable_at_end


def check(name: str, expected: int, actual: int, detail: str) -> dict:
    return {"name": name, "ok": expected == actual, "expected": expected, "actual": actual, "detail": detail}


def integrity_checks(region: str, scan: Scan, window: tuple[int, int] | None) -> list[dict]:
    """The stored entries against what was signed (journal/integrity_scan.py):
    a statement that says ok over an edited entry would be a signed false claim."""
    covered = f"entries {window[0]} to {window[1] - 1} (the period's)" if window else "no entries"
    return [
        check("entry_bytes_vs_stored_hashes", 0, scan.hashes.count,
              f"{covered}: entries whose canonical bytes, hashed as a leaf, differ from their leaf_hash or "
              f"stored Merkle leaf, or that are missing" + _first(scan.hashes.shown)),
        check("entries_vs_signed_root", 0, scan.signed.count,
              f"the root of the latest checkpoint against the root from the leaves of {covered}, hashed from "
              f"their bytes, with the stored nodes outside them, and against the root of the stored nodes alone: "
              f"roots that differ" + _first(scan.signed.shown)),
        check("posting_rows_vs_entry_bytes", 0, scan.rows.count,
              f"{region}'s entries and those with posting rows of {region} among {covered}: entries whose "
              f"ledger_posting rows or copied columns (seq, ts, kind, region, actor, key id) differ from their "
              f"bytes" + _first(scan.rows.shown)),
    ]


def _first(shown: list[str]) -> str:
    return f"; first: {'; '.join(shown)}" if shown else ""


def checks(session: Session, region: str, folded: dict, outstanding: dict[str, int]) -> list[dict]:
    """`folded`: the region's flows (totals.fold); `outstanding`: payable at the
    period's end per provider home region (queries.outstanding_by_region)."""
    mismatches, mismatch_rows = queries.account_mismatches(session, region)
    vouchers = queries.voucher_figures(session, region)
    redemptions = queries.redemption_figures(session, region)
    executed_fen = queries.executed_settlement_fen(session, region)
    window = folded["period_seq_window"]
    entries_expected, entries_with_postings = (queries.entries_vs_posting_rows(session, region, *window)
                                               if window else (0, 0))
    stored_total = queries.stored_total(session)
    budget_stored = session.get(Account, budget_account(region))
    flows, all_time = folded["flows"], folded["balances"]["all"]
    payable_end = payable_at_end(folded)
    paid_all = flows["all"]["settled"] - flows["all"]["payment_failed"]

    first = ", ".join(f"{name} (ledger {replay}, stored {stored})" for name, replay, stored in mismatch_rows)
    unclassified = folded["unclassified"]
    return [
        check("accounts_replay_vs_stored", 0, mismatches,
              f"accounts of {region} whose stored balance differs from the replay of their ledger postings"
              + (f"; first: {first}" if first else "")),
        check("budget_replay_vs_stored", all_time["budget"], budget_stored.balance_fen if budget_stored else 0,
              f"{budget_account(region)}: ledger replay (expected) vs stored balance (actual)"),
        check("vouchers_available_vs_ledger", all_time["voucher"], vouchers["available"],
              f"available value of {region}'s {vouchers['count']} vouchers: ledger replay of voucher:V accounts "
              f"(expected) vs voucher table (actual)"),
        check("vouchers_held_vs_ledger", all_time["held"], vouchers["held"],
              f"held value of {region}'s vouchers: ledger replay of voucher:V:held accounts (expected) "
              f"vs voucher table (actual)"),
        check("voucher_rows_vs_accounts", 0, vouchers["off_accounts"],
              f"{region}'s vouchers whose available or held value differs from their stored accounts"
              + (f"; first: {', '.join(vouchers['off_examples'])}" if vouchers["off_examples"] else "")),
        check("voucher_identity", 0, vouchers["identity_broken"],
              f"{region}'s vouchers where available + held + redeemed + returned != face value"
              + (f"; first: {', '.join(vouchers['identity_examples'])}" if vouchers["identity_examples"] else "")),
        check("vouchers_face_vs_issued", flows["all"]["issued"], vouchers["face"],
              f"issued budget:{region} -> voucher:V, all time (expected) vs face value of the vouchers (actual)"),
        check("vouchers_redeemed_vs_ledger", flows["all"]["redeemed"], vouchers["redeemed"],
              f"redeemed voucher:V:held -> payable:{region}:P, all time (expected) vs redeemed value of the "
              f"vouchers (actual)"),
        check("vouchers_returned_vs_ledger", flows["all"]["returned"], vouchers["returned"],
              f"returned voucher:V -> budget:{region}, all time (expected) vs returned value of the vouchers "
              f"(actual)"),
        check("payable_vs_unsettled_redemptions", all_time["payable"], redemptions["unsettled"],
              f"{payable_prefix(region)}* ledger balance (expected) vs the {redemptions['unsettled_count']} redeemed, "
              f"unsettled redemptions of {region} (actual)"),
        check("paid_vs_executed_settlements", paid_all, executed_fen,
              f"paid payable:{region}:P -> paid:P less failed payments, all time (expected) vs lines of "
              f"{region}'s executed settlements not reported failed (actual)"),
        check("settled_redemptions_vs_ledger", paid_all, redemptions["settled"],
              f"paid by {region} in the ledger, less failed payments (expected) vs settled redemptions of {region}, "
              f"recovered ones included (actual)"),
        check("recoveries_vs_redemptions", flows["all"]["recovered_unpaid"] + flows["all"]["recovered_paid"],
              redemptions["recovered"],
              f"recovered payable:{region}:P -> budget:{region} and paid:P -> receivable:{region}:P, all time "
              f"(expected) vs recovered_fen of {region}'s redemptions (actual)"),
        check("posting_rows_vs_entries", entries_expected, entries_with_postings,
              f"entries of {region} of kinds that always post ({', '.join(ALWAYS_POSTING_KINDS)}) between its "
              f"first and last posting of the period"
              + (f" (seq {window[0]} to {window[1]})" if window else " (none)")
              + ": in ledger_entry (expected) vs with posting rows in ledger_posting (actual)"),
        check("postings_classified", 0, unclassified["postings"],
              f"postings of {region} that are none of the flows of DESIGN §3"
              + (f": {', '.join(sorted(unclassified['pairs']))}" if unclassified["pairs"] else "")),
        check("outstanding_by_provider_vs_region", payable_end, sum(outstanding.values()),
              f"{payable_prefix(region)}* at period end from {region}'s postings (expected) vs summed per provider "
              f"account (actual)"),
        check("balances_sum_to_zero", 0, stored_total, "sum of every stored balance of the whole ledger"),
    ]
