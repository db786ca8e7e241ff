"""Amounts are integer fen (DESIGN §3); people read yuan. The one conversion,
by integer arithmetic: a float would lose fen on large sums."""
from __future__ import annotations


def yuan(amount_fen: int, *, thousands: bool = False) -> str:
    """Fen as yuan with exactly two decimals: 250005 -> "2500.05" ("2,500.05" with `thousands`)."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise TypeError(f"amounts are integer fen, got {amount_fen!r}")
    sign = "-" if amount_fen < 0 else ""
    whole, fen = divmod(abs(amount_fen), 100)
    return f"{sign}{whole:,}.{fen:02d}" if thousands else f"{sign}{whole}.{fen:02d}"
