"""Settlement periods (DESIGN §2 Settlement): calendar months and quarters in Asia/Shanghai time."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from voucher_service.payout import periods
from voucher_service.payout.periods import parse_period
from voucher_service.programme.errors import InvalidInput


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bounds(label: str) -> tuple[datetime, datetime]:
    start, end = parse_period(label).bounds_utc()
    return utc(start), utc(end)


@pytest.mark.parametrize("label, first, end", [
    ("2026-01", date(2026, 1, 1), date(2026, 2, 1)),
    ("2026-02", date(2026, 2, 1), date(2026, 3, 1)),
    ("2024-02", date(2024, 2, 1), date(2024, 3, 1)),
    ("2026-11", date(2026, 11, 1), date(2026, 12, 1)),
    ("2026-12", date(2026, 12, 1), date(2027, 1, 1)),
])
def test_months(label, first, end):
    period = parse_period(label)
    assert (period.label, period.kind, period.first_day, period.end_day) == (label, "month", first, end)


@pytest.mark.parametrize("label, first, end", [
    ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
    ("2026-Q2", date(2026, 4, 1), date(2026, 7, 1)),
    ("2026-Q3", date(2026, 7, 1), date(2026, 10, 1)),
    ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
])
def test_quarters(label, first, end):
    period = parse_period(label)
    assert (period.label, period.kind, period.first_day, period.end_day) == (label, "quarter", first, end)


@pytest.mark.parametrize("label, start, end", [
    ("2026-11", "2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z"),
    ("2026-01", "2025-12-31T16:00:00Z", "2026-01-31T16:00:00Z"),
    ("2026-12", "2026-11-30T16:00:00Z", "2026-12-31T16:00:00Z"),
    ("2026-Q1", "2025-12-31T16:00:00Z", "2026-03-31T16:00:00Z"),
    ("2026-Q4", "2026-09-30T16:00:00Z", "2026-12-31T16:00:00Z"),
    ("2024-02", "2024-01-31T16:00:00Z", "2024-02-29T16:00:00Z"),
])
def test_bounds_are_shanghai_midnights_in_utc(label, start, end):
    assert bounds(label) == (utc(start), utc(end))


def test_bounds_are_rfc3339_utc_strings_that_compare_as_times():
    start, end = parse_period("2026-11").bounds_utc()
    assert start.endswith("Z") and end.endswith("Z")
    assert start.startswith("2026-10-31T16:00:00") and end.startswith("2026-11-30T16:00:00")
    # redeemed_at is stored in the same format, so string order is time order
    assert start < "2026-10-31T16:00:00.000001Z" < end and not ("2026-10-31T15:59:59.999999Z" >= start)


@pytest.mark.parametrize("year", [2025, 2026, 2027, 2028])
def test_months_and_quarters_tile_the_year(year):
    months = [bounds(f"{year}-{m:02d}") for m in range(1, 13)]
    quarters = [bounds(f"{year}-Q{q}") for q in range(1, 5)]
    for earlier, later in zip(months, months[1:]):
        assert earlier[1] == later[0]
    for earlier, later in zip(quarters, quarters[1:]):
        assert earlier[1] == later[0]
    assert months[0][0] == quarters[0][0] and months[-1][1] == quarters[-1][1]
    for q in range(4):
        assert quarters[q] == (months[3 * q][0], months[3 * q + 2][1])
    assert months[-1][1] == bounds(f"{year + 1}-01")[0]


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-Q5", "2026-Q0", "26-01", "2026-1", "2026-q1",
                                  "2026/01", "", " 2026-01", "2026-01 ", "2026-01-01", "12026-01", None])
def test_malformed_periods(text):
    with pytest.raises(InvalidInput) as caught:
        parse_period(text)
    assert caught.value.field == "period"


@pytest.mark.parametrize("text", ["2026-01\n", "２０２６-01", "٢٠٢٦-Q1"])
def test_periods_are_strictly_ascii_and_whole(text):
    with pytest.raises(InvalidInput):
        parse_period(text)


@pytest.mark.parametrize("text", ["0000-01", "0000-Q1", "9999-12", "9999-Q4"])
def test_years_out_of_range_are_invalid_input(text):
    with pytest.raises(InvalidInput):
        parse_period(text).bounds_utc()


def test_module_exposes_the_cycle_of_each_period_kind():
    assert periods.CYCLE_OF_PERIOD == {"month": "monthly", "quarter": "quarterly"}
