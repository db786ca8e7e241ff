"""Netting between regions (DESIGN §2 Settlement), property-based."""
from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from voucher_service.payout.netting import net_by_region, net_positions


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
