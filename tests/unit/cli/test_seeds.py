"""Consistency checks for the seed data under seeds/.

The seeds are loaded by `vouchers init` into a fresh database; a broken reference
or a float amount there would only surface as a confusing failure at start-up,
so the files are checked here on their own.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from voucher_service.providers.uscc import is_valid_uscc, uscc_problem

SEEDS = Path(__file__).resolve().parents[3] / "seeds"

CATEGORY_CODES = {"rd", "testing", "tech_transfer", "ip", "consulting", "instruments"}
POLICY_AMOUNTS = ("enterprise_cap_fen", "team_cap_fen", "subsidy_ratio_bp", "validity_days", "budget_fen")


def _load(name: str) -> Any:
    with (SEEDS / name).open(encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def regions() -> list[dict[str, Any]]:
    return _load("regions.json")


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    return _load("catalog.json")


@pytest.fixture(scope="module")
def providers() -> list[dict[str, Any]]:
    return _load("providers.json")


@pytest.fixture(scope="module")
def enterprises() -> list[dict[str, Any]]:
    return _load("enterprises.json")


def _is_int(value: Any) -> bool:
    # bool is a subclass of int; a `true` where an amount belongs is a bug.
    return isinstance(value, int) and not isinstance(value, bool)


def _walk_numbers(obj: Any, path: str = "$"):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk_numbers(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _walk_numbers(value, f"{path}[{index}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


@pytest.mark.parametrize("name", ["regions.json", "catalog.json", "providers.json", "enterprises.json"])
def test_no_float_anywhere(name: str) -> None:
    floats = [path for path, value in _walk_numbers(_load(name)) if isinstance(value, float)]
    assert floats == []


def test_regions_include_sh_ks_and_a_third(regions: list[dict[str, Any]]) -> None:
    codes = [r["code"] for r in regions]
    assert len(codes) == len(set(codes))
    assert len(codes) >= 3
    assert {"SH", "KS"} <= set(codes)
    assert set(codes) - {"SH", "KS"}


def test_region_fields(regions: list[dict[str, Any]]) -> None:
    for region in regions:
        assert region["name_zh"] and region["name_en"]
        assert region["currency"] == "CNY"
        assert region["timezone"] == "Asia/Shanghai"
        assert region["policies"], region["code"]


def test_policies_are_integer_and_sorted(regions: list[dict[str, Any]]) -> None:
    for region in regions:
        dates = [dt.date.fromisoformat(p["effective_from"]) for p in region["policies"]]
        assert dates == sorted(dates), region["code"]
        assert len(set(dates)) == len(dates), region["code"]
        for policy in region["policies"]:
            for field in POLICY_AMOUNTS:
                assert _is_int(policy[field]), (region["code"], field, policy[field])
                assert policy[field] > 0, (region["code"], field)
            assert 0 < policy["subsidy_ratio_bp"] <= 10000
            assert policy["team_cap_fen"] <= policy["enterprise_cap_fen"]
            assert policy["payout_cycle"] in {"monthly", "quarterly"}


def test_sh_and_ks_are_versioned(regions: list[dict[str, Any]]) -> None:
    by_code = {r["code"]: r for r in regions}
    for code in ("SH", "KS"):
        assert len(by_code[code]["policies"]) >= 2, code


def test_current_policy_figures(regions: list[dict[str, Any]]) -> None:
    # The published programme figures (DESIGN.md §1), as of the latest version.
    current = {r["code"]: r["policies"][-1] for r in regions}
    assert current["SH"]["enterprise_cap_fen"] == 500_000 * 100
    assert current["SH"]["team_cap_fen"] == 100_000 * 100
    assert current["SH"]["subsidy_ratio_bp"] == 5000
    assert current["SH"]["payout_cycle"] == "quarterly"
    assert current["KS"]["enterprise_cap_fen"] == 300_000 * 100
    assert current["KS"]["subsidy_ratio_bp"] == 5000
    assert current["KS"]["payout_cycle"] == "monthly"


def test_catalog(catalog: dict[str, Any]) -> None:
    categories = catalog["categories"]
    assert {c["code"] for c in categories} == CATEGORY_CODES
    assert len(categories) == 6
    for category in categories:
        assert category["name_zh"] and category["name_en"]

    items = catalog["items"]
    assert len(items) >= 14
    codes = [i["code"] for i in items]
    assert len(codes) == len(set(codes))
    for item in items:
        assert item["category"] in CATEGORY_CODES, item["code"]
        assert item["name_zh"] and item["name_en"], item["code"]
        assert _is_int(item["max_subsidy_ratio_bp"]), item["code"]
        assert 0 < item["max_subsidy_ratio_bp"] <= 10000, item["code"]
        assert isinstance(item["active"], bool), item["code"]
    assert {i["category"] for i in items} == CATEGORY_CODES
    # At least one item is stricter than every region's policy ratio.
    assert min(i["max_subsidy_ratio_bp"] for i in items) <= 3000


def _check_parties(parties: list[dict[str, Any]], region_codes: set[str]) -> None:
    for party in parties:
        assert party["name"], party["id"]
        assert party["region"] in region_codes, party["id"]
        assert is_valid_uscc(party["uscc"]), (party["id"], uscc_problem(party["uscc"]))


def test_providers(
    providers: list[dict[str, Any]], regions: list[dict[str, Any]], catalog: dict[str, Any]
) -> None:
    region_codes = {r["code"] for r in regions}
    category_codes = {c["code"] for c in catalog["categories"]}
    _check_parties(providers, region_codes)
    for provider in providers:
        assert provider["categories"], provider["id"]
        assert set(provider["categories"]) <= category_codes, provider["id"]
        assert provider["status"] in {"active", "suspended"}, provider["id"]
    assert any(p["status"] == "suspended" for p in providers)
    per_region = {code: sum(p["region"] == code for p in providers) for code in region_codes}
    assert per_region["SH"] >= 3 and per_region["KS"] >= 3
    assert all(count >= 2 for count in per_region.values()), per_region


def test_enterprises(
    enterprises: list[dict[str, Any]], providers: list[dict[str, Any]], regions: list[dict[str, Any]]
) -> None:
    region_codes = {r["code"] for r in regions}
    provider_ids = {p["id"] for p in providers}
    _check_parties(enterprises, region_codes)
    for enterprise in enterprises:
        assert enterprise["kind"] in {"enterprise", "team"}, enterprise["id"]
        assert set(enterprise["related_provider_ids"]) <= provider_ids, enterprise["id"]
    assert len(enterprises) >= 5
    assert any(e["kind"] == "team" and e["region"] == "KS" for e in enterprises)
    assert any(e["related_provider_ids"] for e in enterprises)
    assert all(any(e["region"] == code for e in enterprises) for code in region_codes)


def test_ids_and_usccs_unique(
    providers: list[dict[str, Any]], enterprises: list[dict[str, Any]]
) -> None:
    ids = [p["id"] for p in providers] + [e["id"] for e in enterprises]
    assert len(ids) == len(set(ids))
    usccs = [p["uscc"] for p in providers] + [e["uscc"] for e in enterprises]
    assert len(usccs) == len(set(usccs))
