"""Cells of the CSV files for people (payout files, programme figures) are never formulas
in a spreadsheet, whatever a provider's name or a bank reference starts with."""
from __future__ import annotations

import pytest

from voucher_service.http.common import csv_text


@pytest.mark.parametrize("value", [
    "=HYPERLINK(\"http://evil.example\")", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "\n=1",
    " =1+1", "\u00a0=1+1", "\u3000=1+1", "  \u00a0 @x",
    "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", " \uff1d1", "\ufe661",
])
def test_what_a_spreadsheet_would_run_is_quoted(value):
    assert csv_text(value) == "'" + value


@pytest.mark.parametrize("value", [
    "上海市计量测试技术研究院", "CNAPS-0001", "6222021001098765432", "", " ", "a=b", "中国银行上海分行", "1+1",
])
def test_other_text_is_left_as_it_is(value):
    assert csv_text(value) == value
