"""The statement's positions: what the region owes and is owed by every other region."""
from __future__ import annotations

from voucher_service.payout.netting import net_positions


def positions(region: str, regions: list[str], obligations: dict[tuple[str, str], int]) -> dict:
    """`obligations`: fen redeemed in the period per (issuing region, provider's home region)."""
    others = [code for code in regions if code != region]
    gross = []
    for other in others:
        gross.append({"from": region, "to": other, "amount_fen": obligations.get((region, other), 0)})
        gross.append({"from": other, "to": region, "amount_fen": obligations.get((other, region), 0)})
    netted = {frozenset((p["from"], p["to"])): p for p in net_positions(
        (g["from"], g["to"], g["amount_fen"]) for g in gross)}
    net = [netted.get(frozenset((region, other)), {"from": region, "to": other, "amount_fen": 0}) for other in others]
    net_fen = sum(p["amount_fen"] if p["to"] == region else -p["amount_fen"] for p in net)
    return {
        "gross": gross,
        "net": net,
        # Positive: the other regions owe this region on balance; negative: it owes them.
        "net_fen": net_fen,
        "within_region_fen": obligations.get((region, region), 0),
    }
