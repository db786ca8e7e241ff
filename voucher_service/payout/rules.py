"""Rules of settlement, one function each, named as a finance officer would."""
from __future__ import annotations

from voucher_service.payout.periods import CYCLE_OF_PERIOD, Period
from voucher_service.programme.errors import RuleViolation


def check_payout_cycle(cycle: str, period: Period, region: str) -> None:
    if CYCLE_OF_PERIOD[period.kind] != cycle:
        wanted = "YYYY-MM" if cycle == "monthly" else "YYYY-Qn"
        raise RuleViolation("payout_cycle", f"payout cycle: {region} pays providers {cycle}; "
                                            f"settle a {wanted} period, not {period.label}")


def check_period_started(start_utc: str, now_str: str, label: str) -> None:
    if start_utc > now_str:
        raise RuleViolation("period_started", f"period started: {label} has not begun")


def check_four_eyes(approver: str, creator: str) -> None:
    if approver == creator:
        raise RuleViolation("four_eyes", "four eyes: the finance officer who created a batch may not approve it")
