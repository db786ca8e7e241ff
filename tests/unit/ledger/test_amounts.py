"""Fen as yuan: integer arithmetic, two decimals, the sign in front, never a float."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voucher_service.ledger.amounts import yuan


@pytest.mark.parametrize("fen, text, grouped", [
    (0, "0.00", "0.00"), (5, "0.05", "0.05"), (250_005, "2500.05", "2,500.05"), (-1, "-0.01", "-0.01"),
    (-123_456_789, "-1234567.89", "-1,234,567.89"), (10**12, "10000000000.00", "10,000,000,000.00"),
])
def test_yuan(fen, text, grouped):
    assert yuan(fen) == text
    assert yuan(fen, thousands=True) == grouped


@pytest.mark.parametrize("value", [1.5, "100", True, None])
def test_only_integer_fen(value):
    with pytest.raises(TypeError):
        yuan(value)


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_yuan_reads_back_as_the_same_fen(fen):
    whole, _, cents = yuan(fen).lstrip("-").partition(".")
    assert (int(whole) * 100 + int(cents)) * (-1 if fen < 0 else 1) == fen
