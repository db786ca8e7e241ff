"""Settlement rules in isolation (DESIGN §2 Settlement): periods in Asia/Shanghai time,
the payout-cycle, period-started and four-eyes rules, and netting between regions
(property-based)."""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voucher_service.payout import periods
from voucher_service.payout.netting import net_by_region, net_positions
from voucher_service.payout.periods import parse_period
from voucher_service.payout.rules import check_four_eyes, check_payout_cycle, check_period_started
from voucher_service.programme.errors import InvalidInput, RuleViolation


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bounds(label: str) -> tuple[datetime, datetime]:
    start, end = parse_period(label).bounds_utc()
    return utc(start), utc(end)


# --- parse_period --------------------------------------------------------------------

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


# --- rules -----------------------------------------------------------------------------

def rule_of(fn, *args) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        fn(*args)
    return caught.value


def test_payout_cycle():
    check_payout_cycle("monthly", parse_period("2026-03"), "KS")
    check_payout_cycle("quarterly", parse_period("2026-Q1"), "SH")
    error = rule_of(check_payout_cycle, "quarterly", parse_period("2026-03"), "SH")
    assert error.rule == "payout_cycle" and "SH" in error.detail and "YYYY-Qn" in error.detail
    error = rule_of(check_payout_cycle, "monthly", parse_period("2026-Q1"), "KS")
    assert error.rule == "payout_cycle" and "KS" in error.detail and "YYYY-MM" in error.detail


def test_period_started_at_its_first_instant():
    start, _end = parse_period("2026-11").bounds_utc()
    check_period_started(start, start, "2026-11")
    check_period_started(start, "2026-10-31T16:00:00.000001Z", "2026-11")
    error = rule_of(check_period_started, start, "2026-10-31T15:59:59.999999Z", "2026-11")
    assert error.rule == "period_started" and "2026-11" in error.detail


def test_four_eyes():
    check_four_eyes("usr_b", "usr_a")
    error = rule_of(check_four_eyes, "usr_a", "usr_a")
    assert error.rule == "four_eyes" and "four eyes" in error.detail


# --- netting ---------------------------------------------------------------------------

def test_netting_examples():
    assert net_positions([]) == []
    assert net_positions([("KS", "KS", 500)]) == []
    assert net_positions([("KS", "SH", 700), ("SH", "KS", 300)]) == [{"from": "KS", "to": "SH", "amount_fen": 400}]
    assert net_positions([("KS", "SH", 300), ("SH", "KS", 700)]) == [{"from": "SH", "to": "KS", "amount_fen": 400}]
    assert net_positions([("KS", "SH", 300), ("SH", "KS", 300)]) == []
    assert net_positions([("KS", "SH", 100), ("KS", "WJ", 50), ("KS", "KS", 999), ("KS", "SH", 1)]) == [
        {"from": "KS", "to": "SH", "amount_fen": 101}, {"from": "KS", "to": "WJ", "amount_fen": 50}]
    assert net_by_region([{"from": "KS", "to": "SH", "amount_fen": 101},
                          {"from": "KS", "to": "WJ", "amount_fen": 50}]) == {"KS": -151, "SH": 101, "WJ": 50}


REGIONS = ["SH", "KS", "WJ", "HZ", "NB"]
region_sets = st.lists(st.sampled_from(REGIONS), min_size=1, max_size=5, unique=True)


@st.composite
def obligation_lists(draw):
    regions = draw(region_sets)
    obligation = st.tuples(st.sampled_from(regions), st.sampled_from(regions), st.integers(1, 10**9))
    return draw(st.lists(obligation, max_size=40))


@st.composite
def cancelling_lists(draw):
    """Obligations in which some pairs owe each other exactly the same."""
    obligations = draw(obligation_lists())
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=2, max_size=2, unique=True))
    amount = draw(st.integers(1, 10**9))
    a, b = regions
    # strip anything between a and b, then add exactly balanced flows
    kept = [o for o in obligations if {o[0], o[1]} != {a, b}]
    split = draw(st.integers(1, amount))
    return kept + [(a, b, amount), (b, a, split)] + ([(b, a, amount - split)] if amount - split else []), (a, b)


def gross(obligations) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for debtor, creditor, amount in obligations:
        totals[(debtor, creditor)] += amount
    return totals


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(obligation_lists())
def test_nets_sum_to_zero(obligations):
    assert sum(net_by_region(net_positions(obligations)).values()) == 0


@PROPERTY_SETTINGS
@given(obligation_lists())
def test_each_pair_once_with_the_difference_of_gross_flows(obligations):
    positions = net_positions(obligations)
    totals = gross(obligations)
    pairs = [frozenset((p["from"], p["to"])) for p in positions]
    assert len(pairs) == len(set(pairs)), "each unordered pair at most once"
    for position in positions:
        a, b, amount = position["from"], position["to"], position["amount_fen"]
        assert a != b
        assert isinstance(amount, int) and amount > 0
        assert amount == totals[(a, b)] - totals[(b, a)], "from the net debtor to the net creditor"
    expected = {frozenset((a, b)) for (a, b) in totals
                if a != b and totals[(a, b)] != totals[(b, a)]}
    assert set(pairs) == expected, "every pair that does not cancel, and no other"
    assert all(set(p) == {"from", "to", "amount_fen"} for p in positions)


@PROPERTY_SETTINGS
@given(cancelling_lists())
def test_pairs_that_cancel_are_absent(case):
    obligations, (a, b) = case
    assert frozenset((a, b)) not in {frozenset((p["from"], p["to"])) for p in net_positions(obligations)}


@PROPERTY_SETTINGS
@given(obligation_lists(), st.lists(st.tuples(st.sampled_from(REGIONS), st.integers(1, 10**9)), max_size=10))
def test_same_region_obligations_are_ignored(obligations, internal):
    noisy = obligations + [(region, region, amount) for region, amount in internal]
    assert net_positions(noisy) == net_positions(obligations)
    assert all(p["from"] != p["to"] for p in net_positions(noisy))


@PROPERTY_SETTINGS
@given(obligation_lists(), st.randoms(use_true_random=False))
def test_independent_of_input_order(obligations, rnd: random.Random):
    shuffled = list(obligations)
    rnd.shuffle(shuffled)
    assert net_positions(shuffled) == net_positions(obligations)
    assert net_by_region(net_positions(shuffled)) == net_by_region(net_positions(obligations))
    # and of being given as a one-shot iterator
    assert net_positions(iter(shuffled)) == net_positions(obligations)


@PROPERTY_SETTINGS
@given(obligation_lists())
def test_net_per_region_is_owed_minus_owes(obligations):
    owed_to, owes = defaultdict(int), defaultdict(int)
    for debtor, creditor, amount in obligations:
        if debtor != creditor:
            owes[debtor] += amount
            owed_to[creditor] += amount
    expected = {r: owed_to[r] - owes[r] for r in set(owed_to) | set(owes)}
    net = net_by_region(net_positions(obligations))
    for region in set(expected) | set(net):
        assert net.get(region, 0) == expected.get(region, 0), region


def test_module_exposes_the_cycle_of_each_period_kind():
    assert periods.CYCLE_OF_PERIOD == {"month": "monthly", "quarter": "quarterly"}
