"""Shared governance of the catalogue (DESIGN §8): a change is a proposal, in
effect once officers of a quorum of member regions have approved it.

The quorum is `all` (every member region) or a number N (at most the number
of members), counted against the member regions (rows of `region`) at each
evaluation: when the change is proposed and at each approval. A region that
joins while a proposal is open therefore counts from then on (under `all` the
proposal then needs it too). The proposer's region is the first approval, so
with one member region, or a quorum of 1, a proposal is adopted at once.

Every state change appends one entry: `catalog.proposed`,
`catalog.proposal_approved`, `catalog.proposal_withdrawn`; adopting appends,
besides, the catalogue's own `catalog.item_added` or `catalog.item_updated`
(catalogue/service.py), whose refs name the proposal.
"""
from __future__ import annotations

import json

from sqlmodel import func, select

from voucher_service.catalogue import service as catalogue
from voucher_service.catalogue.rules import (
    PROPOSAL_TRANSITIONS,
    check_catalog_code_unique,
    check_change_applicable,
    check_change_not_empty,
    check_no_open_proposal,
    check_not_already_approved,
    required_approvals,
)
from voucher_service.clock import new_id
from voucher_service.models import CatalogCategory, CatalogItem, CatalogProposal, CatalogProposalApproval, Region
from voucher_service.programme.context import Context
from voucher_service.programme.errors import InvalidInput
from voucher_service.programme.rules import check_transition
from voucher_service.programme.writes import append, lock

CREATE, UPDATE = "create", "update"


def get_proposal(ctx: Context, proposal_id: str, *, for_update: bool = False) -> CatalogProposal:
    return ctx.get(CatalogProposal, proposal_id, "catalog_proposal", noun="catalogue proposal", for_update=for_update)


def change_of(proposal: CatalogProposal) -> dict:
    return json.loads(proposal.change)


def approvals_of(ctx: Context, proposal_id: str) -> list[CatalogProposalApproval]:
    """In the order given: the proposer's region first."""
    return list(ctx.session.exec(select(CatalogProposalApproval)
                                 .where(CatalogProposalApproval.proposal_id == proposal_id)
                                 .order_by(CatalogProposalApproval.approved_at, CatalogProposalApproval.region)))


def approvals_required(ctx: Context, quorum: int | str) -> int:
    members = ctx.session.exec(select(func.count()).select_from(Region)).one()
    return required_approvals(quorum, members)


def approvals_required_of(ctx: Context, proposal: CatalogProposal, quorum: int | str) -> int:
    """What a decided proposal was measured against; for an open one, the quorum as it stands now."""
    return proposal.decided_quorum if proposal.decided_quorum is not None else approvals_required(ctx, quorum)


def _category_exists(ctx: Context, category: str) -> bool:
    return ctx.session.get(CatalogCategory, category) is not None


def _changes_something(item: CatalogItem, fields: dict) -> bool:
    return any(getattr(item, name) != value for name, value in fields.items())


def _open_proposal_for(ctx: Context, code: str) -> str | None:
    return ctx.session.exec(select(CatalogProposal.id).where(CatalogProposal.open_code == code)).first()


def propose(ctx: Context, *, region: str, action: str, code: str, fields: dict,
            quorum: int | str) -> CatalogProposal:
    """A proposal by an officer of `region`, checked as the change itself would
    be (unknown category: InvalidInput; existing code: catalog_code_unique;
    unknown item: NotFound), and adopted at once if the quorum is one region."""
    lock(ctx)
    if action == CREATE:
        if not _category_exists(ctx, fields["category"]):
            raise InvalidInput("category", f"unknown category '{fields['category']}'")
        check_catalog_code_unique(ctx.session.get(CatalogItem, code) is not None, code)
    else:
        item = catalogue.get_catalog_item(ctx, code)
        if "category" in fields and not _category_exists(ctx, fields["category"]):
            raise InvalidInput("category", f"unknown category '{fields['category']}'")
        check_change_not_empty(_changes_something(item, fields), code)
    check_no_open_proposal(_open_proposal_for(ctx, code), code)
    change = {"action": action, "code": code, "fields": fields}
    proposal = CatalogProposal(id=new_id("cpr"), code=code, change=json.dumps(change, ensure_ascii=False),
                               open_code=code, region=region, proposed_by=ctx.actor, proposed_at=ctx.now_str,
                               status="open")
    ctx.session.add(proposal)
    ctx.session.flush()
    ctx.session.add(CatalogProposalApproval(proposal_id=proposal.id, region=region, approved_by=ctx.actor,
                                            approved_at=ctx.now_str))
    ctx.session.flush()
    required = approvals_required(ctx, quorum)
    append(ctx, kind="catalog.proposed", region=region, refs=_refs(proposal),
           data={"change": change, "required_approvals": required})
    if required <= 1:
        _adopt(ctx, proposal, region=region, required=required)
    return proposal


def approve(ctx: Context, proposal_id: str, *, region: str, quorum: int | str) -> CatalogProposal:
    """An officer of `region` approves; the approval that reaches the quorum adopts the change."""
    lock(ctx)
    proposal = get_proposal(ctx, proposal_id, for_update=True)
    check_transition("catalogue proposal", proposal.status, "adopted", PROPOSAL_TRANSITIONS,
                     refusal=f"state machine: catalogue proposal {proposal_id} is '{proposal.status}'; "
                             "only an open proposal may be approved")
    approved = [a.region for a in approvals_of(ctx, proposal_id)]
    check_not_already_approved(region, set(approved))
    ctx.session.add(CatalogProposalApproval(proposal_id=proposal_id, region=region, approved_by=ctx.actor,
                                            approved_at=ctx.now_str))
    ctx.session.flush()
    approved.append(region)
    required = approvals_required(ctx, quorum)
    adopting = len(approved) >= required
    append(ctx, kind="catalog.proposal_approved", region=region, refs=_refs(proposal),
           data={"approved_regions": approved, "required_approvals": required,
                 "status": "adopted" if adopting else "open"})
    if adopting:
        _adopt(ctx, proposal, region=region, required=required)
    return proposal


def withdraw(ctx: Context, proposal_id: str, *, quorum: int | str) -> CatalogProposal:
    """Its region takes an open proposal back (who may is the access model's)."""
    lock(ctx)
    proposal = get_proposal(ctx, proposal_id, for_update=True)
    check_transition("catalogue proposal", proposal.status, "withdrawn", PROPOSAL_TRANSITIONS)
    approved = [a.region for a in approvals_of(ctx, proposal_id)]
    _decide(ctx, proposal, "withdrawn", approvals_required(ctx, quorum))
    append(ctx, kind="catalog.proposal_withdrawn", region=proposal.region, refs=_refs(proposal),
           data={"approved_regions": approved, "status": "withdrawn"})
    return proposal


def _refs(proposal: CatalogProposal) -> dict:
    return {"catalog_proposal": proposal.id, "catalog_item": proposal.code}


def _decide(ctx: Context, proposal: CatalogProposal, status: str, required: int) -> None:
    proposal.status = status
    proposal.decided_at = ctx.now_str
    proposal.decided_quorum = required
    proposal.open_code = None
    ctx.session.add(proposal)
    ctx.session.flush()


def _inapplicable(ctx: Context, change: dict) -> str | None:
    """Why the change cannot be applied to the catalogue as it is now, if it cannot."""
    code, fields = change["code"], change["fields"]
    category = fields.get("category")
    if category is not None and not _category_exists(ctx, category):
        return f"unknown category '{category}'"
    item = ctx.session.get(CatalogItem, code)
    if change["action"] == CREATE:
        return f"item {code} already exists" if item is not None else None
    if item is None:
        return f"no catalogue item {code}"
    return None if _changes_something(item, fields) else f"item {code} already is as proposed"


def _adopt(ctx: Context, proposal: CatalogProposal, *, region: str, required: int) -> None:
    """Apply the change, checked again against the catalogue as it is now; a
    refusal rolls back the whole request (the approval and its entry too)."""
    change = change_of(proposal)
    check_change_applicable(_inapplicable(ctx, change), proposal.id)
    _decide(ctx, proposal, "adopted", required)
    if change["action"] == CREATE:
        catalogue.add_catalog_item(ctx, region=region, code=change["code"], proposal=proposal.id, **change["fields"])
    else:
        catalogue.update_catalog_item(ctx, change["code"], region=region, changes=change["fields"],
                                      proposal=proposal.id)
