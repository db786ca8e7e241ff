"""Rules of the enterprise register in isolation."""
import pytest

from voucher_service.enterprises import rules
from voucher_service.programme.errors import RuleViolation


def test_uscc_unique():
    rules.check_uscc_unique(False, "91330100799655058B")
    with pytest.raises(RuleViolation) as caught:
        rules.check_uscc_unique(True, "91330100799655058B")
    assert caught.value.rule == "uscc_unique"
    assert caught.value.detail == "USCC unique: an enterprise with USCC 91330100799655058B is already registered"
