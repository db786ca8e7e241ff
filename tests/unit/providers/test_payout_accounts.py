"""The pure parts of payout accounts: the number's form, its digest and its mask."""
import hashlib

import pytest

from voucher_service.programme.errors import InvalidInput
from voucher_service.providers import payout_accounts


@pytest.mark.parametrize("number", ["12345678", "1" * 30, "0000000000000000"])
def test_8_to_30_ascii_digits_are_a_number(number):
    payout_accounts.check_account_no(number)


@pytest.mark.parametrize("number", ["1234567", "1" * 31, "1234567a", "１２３４５６７８", "١٢٣٤٥٦٧٨", "12345678\n",
                                    " 12345678", "", 12345678, None])
def test_anything_else_is_refused(number):
    with pytest.raises(InvalidInput) as caught:
        payout_accounts.check_account_no(number)
    assert caught.value.field == "account_no"


def test_the_digest_and_the_mask():
    assert payout_accounts.account_sha256("6222021001098765432") == hashlib.sha256(b"6222021001098765432").hexdigest()
    assert payout_accounts.masked("6222021001098765432") == "****5432"
    assert payout_accounts.masked("12345678") == "****5678"
