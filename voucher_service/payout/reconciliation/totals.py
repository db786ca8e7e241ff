"""The statement's totals: the region's flows in the period and its balances at the period's end."""
from __future__ import annotations

from collections import defaultdict

from voucher_service.payout.reconciliation.flows import FLOW_OF_PAIR


def fold(all_time: list[tuple], in_period: list[tuple]) -> dict:
    """The few aggregated rows of the two flow queries into flows and class balances."""
    flows = {window: defaultdict(int) for window in ("period", "to_end", "all")}
    balances = {window: defaultdict(int) for window in ("to_end", "all")}
    unclassified = {"postings": 0, "pairs": set()}
    for (src, dst), before_end, fen, postings in all_time:
        flow = FLOW_OF_PAIR.get((src, dst))
        if flow is None:
            unclassified["postings"] += postings
            unclassified["pairs"].add(f"{src} -> {dst}")
        for window in ("all", "to_end") if before_end else ("all",):
            if flow is not None:
                flows[window][flow] += fen
            balances[window][src] -= fen
            balances[window][dst] += fen
    returned_by_kind: dict[str, int] = defaultdict(int)
    closed_by_kind: dict[str, int] = defaultdict(int)  # receivable -> budget: repaid or offset
    seqs = []
    for (src, dst), kind, fen, low, high in in_period:
        flow = FLOW_OF_PAIR.get((src, dst))
        if flow is not None:
            flows["period"][flow] += fen
        if flow == "returned":
            returned_by_kind[kind] += fen
        if flow == "receivable_closed":
            closed_by_kind[kind] += fen
        seqs += [low, high]
    window = (min(seqs), max(seqs)) if seqs else None
    return {"flows": flows, "balances": balances, "returned_by_kind": returned_by_kind,
            "closed_by_kind": closed_by_kind,
            "unclassified": unclassified, "period_seq_window": window}


def payable_at_end(folded: dict) -> int:
    """What the region owed providers when the period ended."""
    return folded["balances"]["to_end"]["payable"]


def totals(folded: dict) -> dict:
    flows, returned, to_end = folded["flows"], folded["returned_by_kind"], folded["balances"]["to_end"]
    return {
        "funded_fen": flows["period"]["funded"],
        "issued_fen": flows["period"]["issued"],
        "reserved_fen": flows["period"]["reserved"],
        "released_fen": flows["period"]["released"],
        "redeemed_fen": flows["period"]["redeemed"],
        "voided_fen": returned.get("voucher.voided", 0),
        "expired_fen": returned.get("voucher.expired", 0),
        # Held value given back to the budget because the voucher had closed
        # (voided or expired) when its redemption was released.
        "released_to_budget_fen": sum(fen for kind, fen in returned.items()
                                      if kind not in ("voucher.voided", "voucher.expired")),
        "settled_paid_fen": flows["period"]["settled"],
        "payment_failed_fen": flows["period"]["payment_failed"],
        "recovered_fen": flows["period"]["recovered_unpaid"] + flows["period"]["recovered_paid"],
        # What providers owe the region back after recoveries of money already paid.
        "receivables": {
            "opened_fen": flows["period"]["recovered_paid"],
            "repaid_fen": folded["closed_by_kind"].get("receivable.repaid", 0),
            "offset_fen": (folded["closed_by_kind"].get("settlement.executed", 0)
                           - flows["period"]["offset_reversed"]),
            "outstanding_fen": to_end["receivable"],
        },
        "as_of_end": {
            "budget_fen": to_end["budget"],
            "vouchers_available_fen": to_end["voucher"],
            "vouchers_held_fen": to_end["held"],
            "payable_fen": payable_at_end(folded),
            "paid_fen": flows["to_end"]["settled"] - flows["to_end"]["payment_failed"],
        },
    }
