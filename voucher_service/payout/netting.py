"""Netting gross obligations between regions."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable


def net_positions(obligations: Iterable[tuple[str, str, int]]) -> list[dict]:
    """Net gross obligations (debtor, creditor, fen) between every pair of regions.

    Each pair appears once, from the net debtor to the net creditor, with the
    difference of what each owes the other; pairs that cancel out are omitted,
    as are obligations within one region.
    """
    gross: dict[tuple[str, str], int] = defaultdict(int)
    for debtor, creditor, amount_fen in obligations:
        if debtor != creditor:
            gross[(debtor, creditor)] += amount_fen
    positions = []
    for a, b in sorted({tuple(sorted(pair)) for pair in gross}):
        net_fen = gross[(a, b)] - gross[(b, a)]
        if net_fen:
            debtor, creditor = (a, b) if net_fen > 0 else (b, a)
            positions.append({"from": debtor, "to": creditor, "amount_fen": abs(net_fen)})
    return positions


def net_by_region(positions: Iterable[dict]) -> dict[str, int]:
    """Each region's net: positive if it is owed, negative if it owes; they sum to zero."""
    net: dict[str, int] = defaultdict(int)
    for position in positions:
        net[position["from"]] -= position["amount_fen"]
        net[position["to"]] += position["amount_fen"]
    return dict(net)
