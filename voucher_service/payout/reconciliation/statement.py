"""A region's statement for a period, read from one snapshot and assembled from its sections."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlmodel import Session

from voucher_service.clock import rfc3339, utc_now
from voucher_service.journal import integrity_scan, tree
from voucher_service.models import Region
from voucher_service.payout.periods import PERIOD_PATTERN, Period, parse_period
from voucher_service.payout.reconciliation import queries
from voucher_service.payout.reconciliation.checks import checks, integrity_checks
from voucher_service.payout.reconciliation.positions import positions
from voucher_service.payout.reconciliation.totals import fold, payable_at_end, totals
from voucher_service.programme.errors import InvalidInput


def parse_statement_period(label: str) -> tuple[Period, str, str]:
    """The period and its [start, end) in UTC, or InvalidInput (a 422) for a label
    that matches the pattern but names no representable period (year 0, 9999-12)."""
    # ASCII only: the pattern's \d also matches other scripts' digits (２０２６-01).
    if not isinstance(label, str) or not label.isascii() or not PERIOD_PATTERN.fullmatch(label):
        raise InvalidInput("period", "period must be YYYY-MM (a month) or YYYY-Qn (a quarter)")
    try:
        period = parse_period(label)
        start, end = period.bounds_utc()
    except (ValueError, OverflowError):
        raise InvalidInput("period", f"period {label} is out of the supported range of dates") from None
    return period, start, end


def build_statement(session: Session, region: str, period_label: str, *,
                    clock: Callable[[], datetime] = utc_now) -> dict:
    """The unsigned statement of `region` for `period_label`, read in `session`
    (which the caller opened as a snapshot). Raises InvalidInput for a bad period."""
    period, start, end = parse_statement_period(period_label)
    # The first read fixes the snapshot; the statement is generated after it,
    # so every entry it covers is older than `generated_at`.
    size = tree.tree_size(session)
    generated_at = rfc3339(clock())
    root = tree.root_at(session, size)
    regions = list(session.exec(select(Region.code).order_by(Region.code)).scalars())

    folded = fold(queries.flows_all_time(session, region, end), queries.flows_in_period(session, region, start, end))
    outstanding = queries.outstanding_by_region(session, region, end)
    obligations = queries.obligations(session, region, regions, start, end)
    scan, window = integrity_scan.statement_scan(session, region, start, end, folded["period_seq_window"])
    return {
        "region": region,
        "period": period.label,
        "period_start": start,
        "period_end": end,
        "generated_at": generated_at,
        "totals": totals(folded),
        "outstanding_liability_fen": payable_at_end(folded),
        "outstanding_liability": [{"provider_region": code, "amount_fen": outstanding.get(code, 0)}
                                  for code in regions],
        "positions": positions(region, regions, obligations),
        "checks": checks(session, region, folded, outstanding) + integrity_checks(region, scan, window),
        "ledger": {"tree_size": size, "root": tree.b64(root)},
    }
