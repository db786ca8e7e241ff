"""The shared catalogue of eligible services (服务内容统一)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from voucher_service.catalogue.rules import check_catalog_code_unique
from voucher_service.journal import reference_cache as registry_cache
from voucher_service.models import CatalogCategory, CatalogItem
from voucher_service.programme.context import Context
from voucher_service.programme.errors import InvalidInput, NotFound
from voucher_service.programme.writes import append, lock


def add_category(ctx: Context, *, code, name_zh, name_en, region) -> CatalogCategory:
    lock(ctx)
    category = CatalogCategory(code=code, name_zh=name_zh, name_en=name_en)
    ctx.session.add(category)
    ctx.session.flush()
    append(ctx, kind="catalog.category_added", region=region, refs={"category": code},
            data={"code": code, "name_zh": name_zh, "name_en": name_en})
    return category


def list_categories(ctx: Context) -> list[CatalogCategory]:
    return list(ctx.session.exec(select(CatalogCategory).order_by(CatalogCategory.code)))


def catalog_item_json(item: CatalogItem) -> dict:
    return {"code": item.code, "category": item.category, "name_zh": item.name_zh, "name_en": item.name_en,
            "max_subsidy_ratio_bp": item.max_subsidy_ratio_bp, "active": item.active}


def _refs(code: str, proposal: str | None) -> dict:
    return {"catalog_item": code, **({"catalog_proposal": proposal} if proposal else {})}


def add_catalog_item(ctx: Context, *, region, code, category, name_zh, name_en, max_subsidy_ratio_bp,
                     active=True, proposal: str | None = None) -> CatalogItem:
    """Adds the item at once: the seed loader's bootstrap, and the adoption of a
    proposal (catalogue/proposals.py), whose id the entry's refs then name."""
    lock(ctx)
    if ctx.session.get(CatalogCategory, category) is None:
        raise InvalidInput("category", f"unknown category '{category}'")
    check_catalog_code_unique(ctx.session.get(CatalogItem, code) is not None, code)
    item = CatalogItem(code=code, category=category, name_zh=name_zh, name_en=name_en,
                       max_subsidy_ratio_bp=max_subsidy_ratio_bp, active=active,
                       created_at=ctx.now_str, updated_at=ctx.now_str)
    ctx.session.add(item)
    ctx.session.flush()
    append(ctx, kind="catalog.item_added", region=region, refs=_refs(code, proposal),
            data=catalog_item_json(item))
    return item


@dataclass(frozen=True)
class CatalogFacts:
    """What the rules of spending a voucher read of a catalogue item."""
    code: str
    category: str
    active: bool
    max_subsidy_ratio_bp: int


def catalog_facts(ctx: Context, code: str) -> CatalogFacts:
    def load():
        row = ctx.session.connection().execute(
            select(CatalogItem.code, CatalogItem.category, CatalogItem.active, CatalogItem.max_subsidy_ratio_bp)
            .where(CatalogItem.code == code)).first()
        return None if row is None else CatalogFacts(row.code, row.category, bool(row.active),
                                                     row.max_subsidy_ratio_bp)
    facts = registry_cache.cached(ctx.session, "catalog_item", code, load)
    if facts is None:
        raise NotFound("catalog_item", f"no catalogue item {code}")
    return facts


def get_catalog_item(ctx: Context, code: str) -> CatalogItem:
    return ctx.get(CatalogItem, code, "catalog_item", noun="catalogue item")


def update_catalog_item(ctx: Context, code: str, *, region: str, changes: dict,
                        proposal: str | None = None) -> CatalogItem:
    """Changes the item at once; through the API only by adopting a proposal."""
    lock(ctx)
    item = get_catalog_item(ctx, code)
    if "category" in changes and ctx.session.get(CatalogCategory, changes["category"]) is None:
        raise InvalidInput("category", f"unknown category '{changes['category']}'")
    before = catalog_item_json(item)
    for field_name, value in changes.items():
        setattr(item, field_name, value)
    after = catalog_item_json(item)
    if before == after:
        return item  # nothing changed: no state change, no entry
    item.updated_at = ctx.now_str
    ctx.session.add(item)
    ctx.session.flush()
    append(ctx, kind="catalog.item_updated", region=region, refs=_refs(code, proposal),
            data={"before": {k: v for k, v in before.items() if after[k] != v},
                  "after": {k: v for k, v in after.items() if before[k] != v}})
    return item
