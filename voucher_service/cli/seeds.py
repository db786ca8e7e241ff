"""Load the seed folder (regions, policies, catalogue, providers, enterprises).

Loading is idempotent: what exists is left alone, so `vouchers init` run twice
changes nothing, and a new policy version added to the file is adopted once.
"""
from __future__ import annotations

import json
import os
from datetime import date

from sqlmodel import select

from voucher_service.catalogue import service as catalogue
from voucher_service.enterprises import service as enterprises
from voucher_service.models import CatalogCategory, CatalogItem, Enterprise, Policy, Provider, Region
from voucher_service.programme import regions
from voucher_service.programme.context import Context
from voucher_service.providers import service as providers


def _read(folder: str, name: str):
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        return json.load(handle)


def load_seeds(ctx: Context, folder: str, *, keyring, origin: str) -> dict[str, int]:
    created = {"regions": 0, "policies": 0, "categories": 0, "items": 0, "providers": 0, "enterprises": 0}
    region_seeds = _read(folder, "regions.json")
    for seed in region_seeds:
        code = seed["code"]
        policies = [{**policy, "effective_from": date.fromisoformat(policy["effective_from"])}
                    for policy in seed["policies"]]
        if ctx.session.get(Region, code) is None:
            # The same path as POST /regions: key, registration, policies, budget.
            regions.join_scheme(ctx, keyring, code=code, name_zh=seed["name_zh"], name_en=seed["name_en"],
                                policies=policies, origin=origin)
            created["regions"] += 1
            created["policies"] += len(policies)
            continue
        for policy in policies:
            exists = ctx.session.exec(select(Policy).where(Policy.region == code,
                                                           Policy.effective_from == policy["effective_from"])).first()
            if exists is None:
                regions.adopt_policy(ctx, code, **policy)
                created["policies"] += 1

    # The catalogue is shared; its seed entries are recorded under the first region's authority.
    # Added directly, not proposed (catalogue/proposals.py): the seeds are the operator's
    # bootstrap of the scheme, before there are regions' officers to approve anything.
    catalogue_region = region_seeds[0]["code"]
    catalog = _read(folder, "catalog.json")
    for category in catalog["categories"]:
        if ctx.session.get(CatalogCategory, category["code"]) is None:
            catalogue.add_category(ctx, region=catalogue_region, **category)
            created["categories"] += 1
    for item in catalog["items"]:
        if ctx.session.get(CatalogItem, item["code"]) is None:
            catalogue.add_catalog_item(ctx, region=catalogue_region, **item)
            created["items"] += 1

    for provider in _read(folder, "providers.json"):
        if ctx.session.get(Provider, provider["id"]) is None:
            providers.register_provider(ctx, provider_id=provider["id"], name=provider["name"],
                                       uscc=provider["uscc"], region=provider["region"],
                                       categories=provider["categories"], status=provider.get("status", "active"))
            created["providers"] += 1
    for enterprise in _read(folder, "enterprises.json"):
        if ctx.session.get(Enterprise, enterprise["id"]) is None:
            enterprises.register_enterprise(ctx, enterprise_id=enterprise["id"], name=enterprise["name"],
                                         uscc=enterprise["uscc"], region=enterprise["region"],
                                         kind=enterprise["kind"],
                                         related_provider_ids=enterprise.get("related_provider_ids", []))
            created["enterprises"] += 1
    return created
