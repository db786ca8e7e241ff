"""The months of a programme report: Asia/Shanghai bounds, and what is refused."""
from __future__ import annotations

import pytest

from voucher_service.programme.errors import InvalidInput
from voucher_service.reports.programme import MAX_MONTHS, months_between


def test_a_month_is_bounded_by_shanghai_midnights():
    [january] = months_between("2026-01", "2026-01")
    assert (january.label, january.start_utc, january.end_utc) == (
        "2026-01", "2025-12-31T16:00:00.000000Z", "2026-01-31T16:00:00.000000Z")


def test_months_run_across_a_year_end_without_gaps():
    months = months_between("2025-11", "2026-02")
    assert [m.label for m in months] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert all(a.end_utc == b.start_utc for a, b in zip(months, months[1:]))


def test_the_longest_report_is_allowed_and_one_more_month_is_not():
    assert len(months_between("2016-01", "2025-12")) == MAX_MONTHS
    with pytest.raises(InvalidInput) as refused:
        months_between("2016-01", "2026-01")
    assert refused.value.field == "to"


@pytest.mark.parametrize("first, last, field", [
    ("2026-02", "2026-01", "to"),  # backwards
    ("2026-13", "2026-12", "from"),
    ("2026-1", "2026-12", "from"),
    ("2026-01", "2026-12\n", "to"),  # "$" alone would let a final newline through
    ("٢٠٢٦-01", "2026-12", "from"),  # Arabic-Indic digits are digits to \d, not to the pattern
    ("0000-01", "2026-12", "from"),
    ("2026-01", "9999-12", "to"),
])
def test_bad_months_name_their_field(first, last, field):
    with pytest.raises(InvalidInput) as refused:
        months_between(first, last)
    assert refused.value.field == field
