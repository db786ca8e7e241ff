"""Rules of the shared catalogue in isolation."""
import pytest

from voucher_service.catalogue import rules
from voucher_service.programme.errors import RuleViolation


def test_catalog_code_unique():
    rules.check_catalog_code_unique(False, "TS-01")
    with pytest.raises(RuleViolation) as caught:
        rules.check_catalog_code_unique(True, "TS-01")
    assert caught.value.rule == "catalog_code_unique"
    assert caught.value.detail == "catalogue code unique: item TS-01 already exists"
