"""Rules of the shared catalogue, one function each, named as a finance officer would."""
from __future__ import annotations

from voucher_service.programme.errors import RuleViolation

# A proposal to change the catalogue (DESIGN §8): open until the quorum of
# member regions has approved it (adopted) or its region takes it back.
PROPOSAL_TRANSITIONS = {"open": {"adopted", "withdrawn"}}
QUORUM_ALL = "all"


def required_approvals(quorum: int | str, member_regions: int) -> int:
    """How many member regions must approve a change: all of them, or N of
    them but never more than there are. Counted at each evaluation, so a region
    that joins while a proposal is open counts from then on."""
    return member_regions if quorum == QUORUM_ALL else min(int(quorum), member_regions)


def check_catalog_code_unique(already_exists: bool, code: str) -> None:
    if already_exists:
        raise RuleViolation("catalog_code_unique", f"catalogue code unique: item {code} already exists")


def check_no_open_proposal(open_proposal_id: str | None, code: str) -> None:
    if open_proposal_id is not None:
        raise RuleViolation("catalog_proposal_open", f"catalogue proposal open: {open_proposal_id} already "
                                                     f"proposes a change to {code}; approve or withdraw it first")


def check_change_not_empty(changes_something: bool, code: str) -> None:
    if not changes_something:
        raise RuleViolation("catalog_change_empty", f"catalogue change empty: the change would leave item {code} "
                                                    "as it is")


def check_not_already_approved(region: str, approved_regions: set[str]) -> None:
    if region in approved_regions:
        raise RuleViolation("catalog_already_approved",
                            f"catalogue already approved: {region} has approved this proposal")


def check_change_applicable(problem: str | None, proposal_id: str) -> None:
    """At adoption the change is checked again against the catalogue as it is then."""
    if problem is not None:
        raise RuleViolation("catalog_change_inapplicable",
                            f"catalogue change inapplicable: proposal {proposal_id} can no longer be applied: {problem}")
