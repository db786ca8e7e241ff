"""Random lifecycles through the HTTP API, with the invariants of DESIGN §3 and
§4 checked after every step against a model of what each voucher should hold."""
from __future__ import annotations

import atexit
import collections
import json
import os
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from conftest import Actors
from helpers import upload_document
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all
from voucher_service.models import Account, LedgerEntry

# MACHINE_STATS=1 prints how often each outcome happened: a check that the
# machine reaches deep states, not only refusals.
SEEN = collections.Counter()
atexit.register(lambda: print(sorted(SEEN.items())) if os.environ.get("MACHINE_STATS") else None)


def event(outcome):
    SEEN[outcome] += 1

ENTERPRISES = ["ent-ks-001", "ent-ks-002", "ent-ks-003", "ent-sh-001", "ent-sh-002", "ent-wj-001"]
REGION_OF = {e: e.split("-")[1].upper() for e in ENTERPRISES}
REGIONS = ("SH", "KS", "WJ")
# Active and suspended providers, accredited or not, related or not: rules decide.
# Providers accredited for testing/instruments appear more often so that most
# reservations can succeed; the others exercise the refusals.
PROVIDERS = ["prv-sh-001", "prv-ks-002", "prv-wj-001"] * 3 + ["prv-sh-003", "prv-sh-005", "prv-ks-001", "prv-ks-004"]
ITEMS = ["TS-01", "IN-01"] * 3 + ["TS-03", "IP-02", "RD-01", "CS-01"]
# Items whose subsidy ratio the regions propose to change (DESIGN §8): the
# seeds' ratio, changed in the model only when a proposal is adopted.
GOVERNED = {"TS-01": 5000, "IN-01": 5000, "TS-03": 3000}
REGION_RATIO_BP = {"SH": 5000, "KS": 5000, "WJ": 4000}
HOME_OF = {p: p.split("-")[1].upper() for p in PROVIDERS}
SUSPENDED = {"prv-sh-005"}  # seeded suspended; the machine does not reinstate it
# Payout accounts (DESIGN §9): numbers of 8 to 30 ASCII digits, and a few that are not.
account_numbers = st.one_of(st.from_regex(r"[0-9]{8,30}", fullmatch=True),
                            st.sampled_from(["1234567", "1" * 31, "１２３４５６７８"]))
amounts = st.one_of(st.integers(min_value=1, max_value=3_000_000), st.integers(min_value=1, max_value=40_000_000))


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def lifecycle_machine(databases):
    class Lifecycle(RuleBasedStateMachine):
        vouchers = Bundle("vouchers")
        redemptions = Bundle("redemptions")
        proposals = Bundle("proposals")

        def __init__(self):
            super().__init__()
            self.databases = databases
            self.url = databases.clone()
            self.app = databases.app(self.url)
            actors = Actors(self.app)
            self.sme = {e: actors.sme(e) for e in ENTERPRISES}
            self.officer = {r: actors.officer(r) for r in ("SH", "KS", "WJ")}
            self.finance = {r: actors.finance(r) for r in ("SH", "KS", "WJ")}
            # region -> what its budget should hold: funded - granted + returned
            self.budget = {r: self.finance[r].get(f"/regions/{r}/budget").json["remaining_fen"]
                           for r in self.finance}
            self.provider = {p: actors.provider(p) for p in PROVIDERS}
            self.model = {}  # voucher id -> expected (available, held, redeemed)
            self.holds = {}  # redemption id -> (voucher id, amount, status)
            self.ratio = dict(GOVERNED)  # item -> its ratio in effect
            self.proposals = {}  # proposal id -> [item, ratio, proposing region, approving regions, status]
            self.excluded = set()  # (region, provider): the region's vouchers may not be spent there
            # Two officers of each region, for payout accounts' four eyes.
            self.payout_officers = {r: [self.officer[r], actors.officer(r)] for r in REGIONS}
            # provider -> {"pending": (proposer, account) | None, "in_effect": account | None}
            self.payout = {}
            self.account_numbers = set()  # every full number proposed: no entry may hold one
            # Money that comes back (DESIGN §9). Batches are created by self.finance and
            # approved by other finance officers (four eyes).
            self.approver = {r: actors.finance(r) for r in REGIONS}
            self.auditor = actors.auditor()
            self.receivable = collections.Counter()  # (region, provider) -> owed back
            self.lines = {}  # (batch id, provider) -> [region, redemption ids, offset, result]
            self.evidenced = set()  # redemptions with a contract and an invoice (DESIGN §9)
            self.live_invoices = {}  # (provider, invoice_no) -> the redemption whose live claim used it

        def teardown(self):
            for hold in self.holds.values():
                event(f"ended {hold[2]}")  # how deep the run went (MACHINE_STATS=1)
            with self.app.app_context():
                get_engine().dispose()
            self.databases.drop(self.url)

        def _voucher(self, voucher_id):
            return self.sme[self.owner[voucher_id]].get(f"/vouchers/{voucher_id}").json

        @initialize(target=vouchers, enterprise=st.sampled_from(ENTERPRISES), amount=amounts,
                    grant=st.integers(min_value=1, max_value=100))
        def first_voucher(self, enterprise, amount, grant):
            return self.issue(enterprise, amount, grant)

        @rule(target=vouchers, enterprise=st.sampled_from(ENTERPRISES), amount=amounts,
              grant=st.integers(min_value=1, max_value=100))
        def issue(self, enterprise, amount, grant):
            r = self.sme[enterprise].post("/applications", json={"amount_fen": amount, "purpose": "machine"})
            assert r.status_code == 201, r.json
            approved = max(1, amount * grant // 100)
            r = self.officer[REGION_OF[enterprise]].post(f"/applications/{r.json['id']}/approve",
                                                         json={"amount_fen": approved})
            event(f"approve -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if r.status_code == 409:
                assert r.json["rule"] in ("annual_cap", "region_budget"), r.json
                return multiple()
            assert r.status_code == 200, r.json
            voucher = r.json["voucher"]
            self.owner = getattr(self, "owner", {})
            self.owner[voucher["id"]] = enterprise
            self.model[voucher["id"]] = [approved, 0, 0]
            self.budget[REGION_OF[enterprise]] -= approved
            return voucher["id"]

        @rule(target=redemptions, voucher=vouchers, provider=st.sampled_from(PROVIDERS),
              item=st.sampled_from(ITEMS), share=st.integers(min_value=1, max_value=110),
              ratio_pct=st.sampled_from([20, 30, 40, 50, 60]))
        def reserve(self, voucher, provider, item, share, ratio_pct):
            amount = max(1, self.model[voucher][0] * share // 100)
            fee = amount * 100 // ratio_pct
            r = self.sme[self.owner[voucher]].post("/redemptions", json={
                "voucher_id": voucher, "provider_id": provider, "catalog_code": item,
                "service_fee_fen": fee, "amount_fen": amount})
            event(f"reserve -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if (REGION_OF[self.owner[voucher]], provider) in self.excluded:
                # The rules checked before the exclusion (voucher, then provider status) may refuse first.
                status = self._voucher(voucher)["status"]
                expected = ("voucher_active" if status != "active" else
                            "provider_active" if provider in SUSPENDED else "provider_excluded")
                assert r.status_code == 409 and r.json["rule"] == expected, (expected, r.json)
                return multiple()
            if r.status_code == 409:
                assert r.json["rule"] != "provider_excluded", r.json
                return multiple()
            assert r.status_code == 201, r.json
            self.model[voucher][0] -= amount
            self.model[voucher][1] += amount
            self.holds[r.json["id"]] = [voucher, amount, "reserved", provider, item]
            return r.json["id"]

        def _step(self, redemption, client, action, body=None, allowed_from=()):
            voucher, amount, status = self.holds[redemption][:3]
            r = client.post(f"/redemptions/{redemption}/{action}", json=body)
            event(f"{action} -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if status not in allowed_from:
                assert r.status_code == 409 and r.json["rule"] == "state_machine", (action, status, r.json)
                return None
            return r

        def _add_evidence(self, redemption):
            """A contract and an invoice, fresh PDFs: refused only on a closed redemption."""
            provider, status = self.holds[redemption][3], self.holds[redemption][2]
            for kind in ("contract", "invoice"):
                r = upload_document(self.provider[provider], redemption, kind)
                event(f"upload -> {r.status_code} {(r.json or {}).get('rule', '')}")
                if status in ("cancelled", "rejected"):
                    assert r.status_code == 409 and r.json["rule"] == "documents_accepted", r.json
                    return
                assert r.status_code == 201, r.json
            self.evidenced.add(redemption)

        @rule(redemption=redemptions)
        def add_evidence(self, redemption):
            self._add_evidence(redemption)

        def _claim(self, redemption, cut, invoice_no):
            voucher, amount, status, provider, item = self.holds[redemption][:5]
            claimed = max(1, amount - amount * cut // 100)
            # A claim uses the same fee, so the ratio still holds for a lower amount.
            fee = self.sme[self.owner[voucher]].get(f"/redemptions/{redemption}").json["service_fee_fen"]
            r = self._step(redemption, self.provider[provider], "claim",
                           {"invoice_no": invoice_no, "service_fee_fen": fee, "amount_fen": claimed}, ("reserved",))
            if r is None:
                return
            if (REGION_OF[self.owner[voucher]], provider) in self.excluded:
                # Excluded since the reservation: no claim (docs/decisions.md); cancel or reject release it.
                assert r.status_code == 409 and r.json["rule"] == "provider_excluded", r.json
                return
            region_bp = REGION_RATIO_BP[REGION_OF[self.owner[voucher]]]
            limit = fee * min(self.ratio.get(item, 10_000), region_bp) // 10_000
            if r.status_code == 409 and (r.json["rule"] == "provider_active" or (
                    r.json["rule"] == "subsidy_ratio" and claimed > limit and item in GOVERNED)):
                # The item's ratio may have been lowered since the reservation, by an adopted proposal.
                return
            # Evidence and duplicates come last, as the model predicts them.
            if (provider, invoice_no) in self.live_invoices:
                assert r.status_code == 409 and r.json["rule"] == "duplicate_invoice", r.json
                assert self.live_invoices[(provider, invoice_no)] in r.json["detail"], r.json
                return
            if redemption not in self.evidenced:
                assert r.status_code == 409 and r.json["rule"] == "evidence_missing", r.json
                return
            assert r.status_code == 200, r.json
            self.live_invoices[(provider, invoice_no)] = redemption
            self.holds[redemption].append(invoice_no)
            self.model[voucher][1] -= amount - claimed
            if self._open(voucher):
                self.model[voucher][0] += amount - claimed
            self.holds[redemption][1:3] = [claimed, "claimed"]

        @rule(redemption=redemptions, cut=st.integers(min_value=0, max_value=100))
        def claim(self, redemption, cut):
            # A claim needs its evidence first (DESIGN §9).
            if redemption not in self.evidenced and self.holds[redemption][2] == "reserved":
                self._add_evidence(redemption)
            self._claim(redemption, cut, f"INV-{redemption}")

        @rule(redemption=redemptions, cut=st.integers(min_value=0, max_value=100))
        def claim_without_evidence(self, redemption, cut):
            """Whatever the redemption has: the model knows whether it lacks a contract and an invoice."""
            self._claim(redemption, cut, f"INV-{redemption}")

        def _reuse_candidates(self):
            """(reserved redemption, invoice number of a live claim of its provider), sorted."""
            return sorted((redemption, number) for redemption, hold in self.holds.items() if hold[2] == "reserved"
                          for (provider, number) in self.live_invoices if provider == hold[3])

        @precondition(lambda self: self._reuse_candidates())
        @rule(pick=st.integers(min_value=0, max_value=1_000), cut=st.integers(min_value=0, max_value=100))
        def claim_reusing_an_invoice_number(self, pick, cut):
            """The invoice number of a live claim of the same provider: the model predicts
            duplicate_invoice (unless a rule checked before it refuses first)."""
            candidates = self._reuse_candidates()
            redemption, number = candidates[pick % len(candidates)]
            if redemption not in self.evidenced:
                self._add_evidence(redemption)
            self._claim(redemption, cut, number)

        def _open(self, voucher):
            return self._voucher(voucher)["status"] in ("active", "exhausted")

        @rule(redemption=redemptions)
        def confirm(self, redemption):
            voucher = self.holds[redemption][0]
            r = self._step(redemption, self.sme[self.owner[voucher]], "confirm", None, ("claimed",))
            if r is not None:
                assert r.status_code == 200, r.json
                self.holds[redemption][2] = "confirmed"

        @rule(redemption=redemptions)
        def approve(self, redemption):
            voucher, amount = self.holds[redemption][:2]
            officer = self.officer[REGION_OF[self.owner[voucher]]]
            r = self._step(redemption, officer, "approve", None, ("confirmed",))
            if r is not None:
                assert r.status_code == 200, r.json
                self.model[voucher][1] -= amount
                self.model[voucher][2] += amount
                self.holds[redemption][2] = "redeemed"

        @rule(redemption=redemptions, reject=st.booleans())
        def release(self, redemption, reject):
            voucher, amount = self.holds[redemption][:2]
            if reject:
                client, action, allowed = self.officer[REGION_OF[self.owner[voucher]]], "reject", (
                    "reserved", "claimed", "confirmed")
            else:
                client, action, allowed = self.sme[self.owner[voucher]], "cancel", ("reserved",)
            r = self._step(redemption, client, action, {"reason": "machine"}, allowed)
            if r is not None:
                assert r.status_code == 200, r.json
                self.model[voucher][1] -= amount
                if self._open(voucher):
                    self.model[voucher][0] += amount
                if self.holds[redemption][2] != "reserved":  # a rejected claim frees its invoice number
                    del self.live_invoices[(self.holds[redemption][3], self.holds[redemption][5])]
                self.holds[redemption][2] = "cancelled" if action == "cancel" else "rejected"

        @rule(provider=st.sampled_from(PROVIDERS), other=st.sampled_from([1, 2, 1, 2, 0]))
        def exclude(self, provider, other):
            # Mostly another region than the provider's home; sometimes the home region, refused.
            region = HOME_OF[provider] if other == 0 else [r for r in REGIONS if r != HOME_OF[provider]][other % 2]
            r = self.officer[region].post(f"/regions/{region}/excluded-providers",
                                          json={"provider_id": provider, "reason": "machine"})
            event(f"exclude -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if HOME_OF[provider] == region:
                assert r.status_code == 409 and r.json["rule"] == "provider_home_region", r.json
            elif (region, provider) in self.excluded:
                assert r.status_code == 409 and r.json["rule"] == "provider_already_excluded", r.json
            else:
                assert r.status_code == 201, r.json
                self.excluded.add((region, provider))

        @precondition(lambda self: self.excluded)
        @rule(region=st.sampled_from(REGIONS), provider=st.sampled_from(PROVIDERS),
              pick=st.sampled_from([1, 2, 3, 0]))
        def readmit(self, region, provider, pick):
            if pick:  # mostly a standing exclusion, sometimes any pair (most often 404)
                region, provider = sorted(self.excluded)[pick % len(self.excluded)]
            r = self.officer[region].delete(f"/regions/{region}/excluded-providers/{provider}")
            event(f"readmit -> {r.status_code}")
            if (region, provider) in self.excluded:
                assert r.status_code == 200, r.json
                self.excluded.discard((region, provider))
            else:
                assert r.status_code == 404, r.json

        @rule(voucher=vouchers, really=st.integers(min_value=0, max_value=3))
        def void(self, voucher, really):
            if really:
                return
            before = self._voucher(voucher)
            r = self.officer[REGION_OF[self.owner[voucher]]].post(f"/vouchers/{voucher}/void",
                                                                  json={"reason": "machine"})
            if before["status"] in ("voided", "expired"):
                assert r.status_code == 409 and r.json["rule"] == "state_machine", r.json
            elif before["held_fen"] > 0:
                assert r.status_code == 409 and r.json["rule"] == "open_redemptions", r.json
            else:
                assert r.status_code == 200, r.json
                self.budget[REGION_OF[self.owner[voucher]]] += self.model[voucher][0]
                self.model[voucher][0] = 0

        @rule(region=st.sampled_from(["SH", "KS", "WJ"]), amount=st.integers(min_value=1, max_value=50_000_000),
              year_off=st.sampled_from([0, 0, 0, -1, 1]))
        def fund(self, region, amount, year_off):
            """Finance tops the budget up, for the current fiscal year only."""
            year = datetime.now(ZoneInfo("Asia/Shanghai")).year + year_off
            r = self.finance[region].post(f"/regions/{region}/budget", json={
                "amount_fen": amount, "fiscal_year": year, "reference": "machine"})
            event(f"fund -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if year_off:
                assert r.status_code == 409 and r.json["rule"] == "fiscal_year_not_current", r.json
                return
            assert r.status_code == 201, r.json
            self.budget[region] += amount

        @rule(voucher=vouchers, days=st.integers(min_value=-5, max_value=400))
        def extend(self, voucher, days):
            """An extension moves only the last valid day, never a balance; the policy
            (365 or 180 days past the current end) and the state decide the rest."""
            before = self._voucher(voucher)
            until = date.fromisoformat(before["valid_until"]) + timedelta(days=days)
            r = self.officer[REGION_OF[self.owner[voucher]]].post(
                f"/vouchers/{voucher}/extend", json={"valid_until": until.isoformat(), "reason": "machine"})
            event(f"extend -> {r.status_code} {(r.json or {}).get('rule', '')}")
            validity_days = 180 if REGION_OF[self.owner[voucher]] == "WJ" else 365
            if before["status"] not in ("active", "exhausted"):
                assert r.status_code == 409 and r.json["rule"] == "voucher_extendable", r.json
            elif days <= 0:
                assert r.status_code == 409 and r.json["rule"] == "extension_after_current_end", r.json
            elif days > validity_days:
                assert r.status_code == 409 and r.json["rule"] == "validity_exceeds_policy", r.json
            else:
                assert r.status_code == 200 and r.json["valid_until"] == until.isoformat(), r.json

        @rule(target=proposals, item=st.sampled_from(sorted(GOVERNED)),
              ratio=st.sampled_from([2000, 3000, 4000, 5000]), region=st.sampled_from(REGIONS))
        def propose_ratio(self, item, ratio, region):
            """A region proposes another subsidy ratio for an item: not in effect until adopted."""
            r = self.officer[region].patch(f"/catalog/{item}", json={"max_subsidy_ratio_bp": ratio})
            event(f"propose -> {r.status_code} {(r.json or {}).get('rule', '')}")
            # The change is checked first, then whether another proposal for the item is open.
            if ratio == self.ratio[item]:
                assert r.status_code == 409 and r.json["rule"] == "catalog_change_empty", r.json
                return multiple()
            if any(p[0] == item and p[4] == "open" for p in self.proposals.values()):
                assert r.status_code == 409 and r.json["rule"] == "catalog_proposal_open", r.json
                return multiple()
            assert r.status_code == 202 and r.json["status"] == "open", r.json
            assert r.json["required_approvals"] == len(REGIONS)
            self.proposals[r.json["id"]] = [item, ratio, region, {region}, "open"]
            return r.json["id"]

        @rule(proposal=proposals, region=st.sampled_from(REGIONS))
        def approve_proposal(self, proposal, region):
            item, ratio, _proposer, approved, status = self.proposals[proposal]
            r = self.officer[region].post(f"/catalog/proposals/{proposal}/approve")
            event(f"approve proposal -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if status != "open":
                assert r.status_code == 409 and r.json["rule"] == "state_machine", r.json
            elif region in approved:
                assert r.status_code == 409 and r.json["rule"] == "catalog_already_approved", r.json
            else:
                approved.add(region)
                adopted = approved == set(REGIONS)
                assert r.status_code == 200 and r.json["status"] == ("adopted" if adopted else "open"), r.json
                if adopted:
                    event("proposal adopted")
                    self.proposals[proposal][4] = "adopted"
                    self.ratio[item] = ratio

        @rule(proposal=proposals, region=st.sampled_from(REGIONS))
        def withdraw_proposal(self, proposal, region):
            _item, _ratio, proposer, _approved, status = self.proposals[proposal]
            r = self.officer[region].post(f"/catalog/proposals/{proposal}/withdraw")
            event(f"withdraw proposal -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if region != proposer:
                assert r.status_code == 403, r.json
            elif status != "open":
                assert r.status_code == 409 and r.json["rule"] == "state_machine", r.json
            else:
                assert r.status_code == 200 and r.json["status"] == "withdrawn", r.json
                self.proposals[proposal][4] = "withdrawn"

        @rule(provider=st.sampled_from(sorted(set(PROVIDERS))), proposer=st.sampled_from([0, 1]),
              number=account_numbers, bank=st.sampled_from(["中国工商银行", "Bank of Kunshan"]))
        def propose_payout_account(self, provider, proposer, number, bank):
            account = ("machine account", bank, number)
            r = self.payout_officers[HOME_OF[provider]][proposer].put(
                f"/providers/{provider}/payout-account",
                json={"account_name": account[0], "bank_name": bank, "account_no": number})
            event(f"propose payout account -> {r.status_code} {(r.json or {}).get('rule', '')}")
            state = self.payout.setdefault(provider, {"pending": None, "in_effect": None})
            if not (8 <= len(number) <= 30 and number.isascii() and number.isdigit()):
                assert r.status_code == 422, r.json
                return
            self.account_numbers.add(number)
            if state["in_effect"] == account:
                assert r.status_code == 409 and r.json["rule"] == "payout_account_changes", r.json
                return
            assert r.status_code == 202 and r.json["pending"]["account_no_masked"] == "****" + number[-4:], r.json
            state["pending"] = (proposer, account)

        @rule(provider=st.sampled_from(sorted(set(PROVIDERS))), confirmer=st.sampled_from([0, 1]),
              pick=st.sampled_from([1, 2, 3, 0]))
        def confirm_payout_account(self, provider, confirmer, pick):
            pending = sorted(p for p, state in self.payout.items() if state["pending"])
            if pick and pending:  # mostly a pending change, sometimes any provider (most often none pending)
                provider = pending[pick % len(pending)]
            r = self.payout_officers[HOME_OF[provider]][confirmer].post(
                f"/providers/{provider}/payout-account/confirm", json={})
            event(f"confirm payout account -> {r.status_code} {(r.json or {}).get('rule', '')}")
            state = self.payout.setdefault(provider, {"pending": None, "in_effect": None})
            if state["pending"] is None:
                assert r.status_code == 409 and r.json["rule"] == "payout_change_pending", r.json
            elif state["pending"][0] == confirmer:
                assert r.status_code == 409 and r.json["rule"] == "four_eyes", r.json
            else:
                assert r.status_code == 200 and r.json["pending"] is None, r.json
                state["in_effect"], state["pending"] = state["pending"][1], None

        @rule(target=redemptions, voucher=vouchers, provider=st.sampled_from(["prv-sh-001", "prv-ks-002", "prv-wj-001"]),
              share=st.integers(min_value=5, max_value=40))
        def redeem_through(self, voucher, provider, share):
            """Reserve, claim, confirm and approve in one step, so that settlement, recoveries
            and payment results are reached in a run of a few dozen steps."""
            reserved = self.reserve(voucher, provider, "TS-01", share, 20)
            if not isinstance(reserved, str):
                return multiple()
            self.claim(reserved, 0)
            self.confirm(reserved)
            self.approve(reserved)
            return reserved

        def _region_of(self, redemption):
            return REGION_OF[self.owner[self.holds[redemption][0]]]

        @rule(region=st.sampled_from(REGIONS))
        def settle(self, region):
            """Create, approve and execute the region's batch of what is redeemed, with offsets.
            Mostly a region with something to pay; now and then one with nothing."""
            owing = sorted({self._region_of(rid) for rid, hold in self.holds.items() if hold[2] == "redeemed"})
            if owing and region != "WJ":
                region = owing[REGIONS.index(region) % len(owing)]
            now = datetime.now(ZoneInfo("Asia/Shanghai"))
            period = f"{now.year}-Q{(now.month + 2) // 3}" if region == "SH" else f"{now.year}-{now.month:02d}"
            due = {rid: h for rid, h in self.holds.items() if h[2] == "redeemed" and self._region_of(rid) == region}
            r = self.finance[region].post("/settlements", json={"period": period})
            event(f"settle -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if not due:
                assert r.status_code == 409 and r.json["rule"] == "nothing_to_settle", r.json
                return
            assert r.status_code == 201, r.json
            batch = r.json
            gross = collections.Counter()
            for rid, (_voucher, amount, _status, provider) in ((k, h[:4]) for k, h in due.items()):
                gross[provider] += amount
            for line in batch["lines"]:
                provider = line["provider_id"]
                offset = min(self.receivable[(region, provider)], gross[provider])
                assert (line["amount_fen"], line["offset_fen"]) == (gross[provider], offset), (line, gross)
            assert sorted(rid for line in batch["lines"] for rid in line["redemption_ids"]) == sorted(due)
            for other in batch["approvals_required"]:
                assert self.approver[other].post(f"/settlements/{batch['id']}/approve").status_code == 200
            r = self.finance[region].post(f"/settlements/{batch['id']}/execute")
            assert r.status_code == 200, r.json
            for line in batch["lines"]:
                provider = line["provider_id"]
                self.receivable[(region, provider)] -= line["offset_fen"]
                self.budget[region] += line["offset_fen"]
                self.lines[(batch["id"], provider)] = [region, line["redemption_ids"], line["offset_fen"], None]
                for rid in line["redemption_ids"]:
                    self.holds[rid][2] = "settled"

        @rule(redemption=redemptions, part=st.sampled_from([100, 100, 50, 1]))
        def recover(self, redemption, part):
            _voucher, amount, status, provider = self.holds[redemption][:4]
            region = self._region_of(redemption)
            recovered = max(1, amount * part // 100)
            r = self.officer[region].post(f"/redemptions/{redemption}/recover",
                                          json={"amount_fen": recovered, "reason": "machine"})
            event(f"recover -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if status == "redeemed" and recovered != amount:
                assert r.status_code == 409 and r.json["rule"] == "recovery_whole_before_settlement", r.json
            elif status in ("redeemed", "settled"):
                assert r.status_code == 200 and r.json["status"] == "recovered", r.json
                if status == "settled":
                    self.receivable[(region, provider)] += recovered
                else:
                    self.budget[region] += recovered
                self.holds[redemption][2] = "recovered"
            else:
                assert r.status_code == 409 and r.json["rule"] == "state_machine", (status, r.json)

        @rule(pick=st.integers(min_value=0, max_value=1000), part=st.sampled_from([100, 50, 1]))
        def recover_settled(self, pick, part):
            """A settled redemption picked on purpose (the bundle rarely draws one), so that
            receivables, repayments and offsets are reached."""
            settled = sorted(rid for rid, hold in self.holds.items() if hold[2] == "settled")
            if settled:
                self.recover(settled[pick % len(settled)], part)

        @rule(region=st.sampled_from(REGIONS), provider=st.sampled_from(PROVIDERS),
              share=st.sampled_from([100, 50, 101]))
        def repay(self, region, provider, share):
            open_ = sorted(key for key, fen in self.receivable.items() if fen)
            if open_ and share != 101:  # mostly what is owed; sometimes a pair that owes nothing
                region, provider = open_[len(provider) % len(open_)]
            owed = self.receivable[(region, provider)]
            amount = max(1, owed * share // 100)
            r = self.finance[region].post(f"/providers/{provider}/repayments",
                                          json={"amount_fen": amount, "reference": "machine"})
            event(f"repay -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if amount > owed:
                assert r.status_code == 409 and r.json["rule"] == "repayment_within_receivable", r.json
                return
            assert r.status_code == 201 and r.json["receivable_fen"] == owed - amount, r.json
            self.receivable[(region, provider)] -= amount
            self.budget[region] += amount

        @rule(pick=st.integers(min_value=0, max_value=1000), failed=st.booleans())
        def record_result(self, pick, failed):
            pending = sorted(key for key, line in self.lines.items() if line[3] is None)
            if not pending:
                return
            batch_id, provider = pending[pick % len(pending)]
            region, rids, offset, _result = self.lines[(batch_id, provider)]
            result = ({"provider_id": provider, "result": "failed", "reason": "machine"} if failed
                      else {"provider_id": provider, "result": "paid", "bank_reference": "machine"})
            r = self.finance[region].post(f"/settlements/{batch_id}/results", json={"results": [result]})
            event(f"result {result['result']} -> {r.status_code} {(r.json or {}).get('rule', '')}")
            if failed and any(self.holds[rid][2] == "recovered" for rid in rids):
                assert r.status_code == 409 and r.json["rule"] == "recovered_in_line", r.json
                return
            assert r.status_code == 200, r.json
            self.lines[(batch_id, provider)][3] = result["result"]
            if failed:
                for rid in rids:
                    self.holds[rid][2] = "redeemed"
                self.receivable[(region, provider)] += offset
                self.budget[region] -= offset
            left = [key for key, line in self.lines.items() if key[0] == batch_id and line[3] is None]
            assert r.json["status"] == ("executed" if left else "completed"), r.json

        @invariant()
        def receivables_match_model(self):
            with self.app.app_context(), Session(get_engine()) as session:
                stored = {a.name: a.balance_fen for a in session.exec(select(Account)).all()
                          if a.name.startswith("receivable:") and a.balance_fen}
            assert stored == {f"receivable:{r}:{p}": fen for (r, p), fen in self.receivable.items() if fen}

        @invariant()
        def every_payout_line_nets_its_offset(self):
            for batch_id in sorted({batch_id for batch_id, _provider in self.lines}):
                for line in self.auditor.get(f"/settlements/{batch_id}/payouts").json["payouts"]:
                    assert line["net_fen"] == line["amount_fen"] - line["offset_fen"] >= 0, line
                    assert line["result"] == self.lines[(batch_id, line["provider_id"])][3], line

        @invariant()
        def reconciliation_checks_pass(self):
            if not self.lines:
                return
            now = datetime.now(ZoneInfo("Asia/Shanghai"))
            for region in REGIONS:
                statement = self.auditor.get(f"/regions/{region}/reconciliation?period={now.year}-{now.month:02d}")
                assert [c for c in statement.json["checks"] if not c["ok"]] == [], region

        @invariant()
        def payout_accounts_match_model(self):
            for provider, state in self.payout.items():
                shown = self.finance["SH"].get(f"/providers/{provider}/payout-account").json
                for part in ("pending", "in_effect"):
                    account = state[part][1] if part == "pending" and state[part] else state[part]
                    if account is None:
                        assert shown[part] is None, (part, shown)
                    else:
                        assert (shown[part]["bank_name"], shown[part]["account_no_masked"]) == (
                            account[1], "****" + account[2][-4:]), (part, shown)

        @invariant()
        def no_entry_holds_an_account_number(self):
            if not self.account_numbers:
                return
            with self.app.app_context(), Session(get_engine()) as session:
                for canonical in session.exec(select(LedgerEntry.canonical)).all():
                    # In any text of the entry; amounts are JSON numbers, and may hold the same digits.
                    texts = list(_strings(json.loads(bytes(canonical))))
                    assert not any(n in text for n in self.account_numbers for text in texts)

        @invariant()
        def catalogue_matches_model(self):
            for item, ratio in self.ratio.items():
                assert self.officer["SH"].get(f"/catalog/{item}").json["max_subsidy_ratio_bp"] == ratio, item

        @invariant()
        def balances_match_model(self):
            for voucher, (available, held, redeemed) in self.model.items():
                v = self._voucher(voucher)
                assert (v["available_fen"], v["held_fen"], v["redeemed_fen"]) == (available, held, redeemed), v
                assert v["available_fen"] + v["held_fen"] + v["redeemed_fen"] + v["returned_fen"] == v["face_fen"]

        @invariant()
        def budgets_match_model(self):
            for region, expected_fen in self.budget.items():
                budget = self.finance[region].get(f"/regions/{region}/budget").json
                assert budget["remaining_fen"] == expected_fen == budget["years"][-1]["remaining_fen"], budget
                for row in budget["years"]:
                    assert row["remaining_fen"] == (row["carried_over_fen"] + row["funded_fen"]
                                                    + row["returned_fen"] - row["granted_fen"]), row

        @invariant()
        def ledger_invariants_hold(self):
            with self.app.app_context():
                with Session(get_engine()) as session:
                    assert check_all(session) == []

    return Lifecycle


def test_random_lifecycles_keep_every_invariant(databases):
    machine = lifecycle_machine(databases)
    run_state_machine_as_test(machine, settings=settings(max_examples=int(os.environ.get("MACHINE_EXAMPLES", 12)),
                                                         stateful_step_count=40, deadline=None))
