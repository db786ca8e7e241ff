"""Reconciliation statements (DESIGN §2): for one region and one period, what
the ledger says was funded, issued, held, released, redeemed, returned and
settled; the balances at the period's end; what the region owes and is owed
by every other region; and cross-checks between the ledger (a replay of its
posting rows), the stored balances (`account`) and the business tables
(`voucher`, `redemption`, `settlement`).

How the region's postings are found: every flow of DESIGN §3 that touches a
region R's accounts is recorded by an entry *of region R* (issue, reserve,
release, redeem, void, expire, and settlement by the paying region), and
`ledger_posting.region` copies the entry's region. So "R's postings" are one
range of the index (region, ts), and each posting's flow is recognised from
its account names:

    treasury:R -> budget:R          funded
    budget:R   -> voucher:V         issued
    voucher:V  -> voucher:V:held    reserved
    voucher:V:held -> voucher:V     released (claim lowered, cancelled, rejected)
    voucher:V:held -> payable:R:P   redeemed
    voucher:V  -> budget:R          returned: voided, expired, or released after the voucher closed
    payable:R:P -> paid:P           settled (paid out)

A posting of R that is none of these is counted by the `postings_classified`
check rather than silently left out of the totals.

The package: `flows` (account classes and flows, as SQL), `queries` (every
figure, as a SQL aggregate), then one module per section of the statement —
`totals`, `positions`, `checks` — and `statement`, which reads the snapshot
and assembles them.
"""
from voucher_service.payout.reconciliation.flows import ALWAYS_POSTING_KINDS, CLASSES, FLOWS
from voucher_service.payout.reconciliation.statement import build_statement, parse_statement_period

__all__ = ["ALWAYS_POSTING_KINDS", "CLASSES", "FLOWS", "build_statement", "parse_statement_period"]
