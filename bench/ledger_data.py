"""A large, realistic ledger for the benchmarks, built fast and cached.

    .venv/bin/python bench/ledger_data.py [--entries 1000000] [--check]

The seeds are loaded through the domain layer (as `vouchers init` does, with
the clock set to 2025-01-02); then twenty months or so of programme activity
in three regions (enterprises and providers registered, applications, vouchers
issued, reservations, claims, confirmations, redemptions, cancellations,
voids, expiries, budget top-ups, monthly and quarterly settlements with every
region's approval) are simulated in memory and written straight to the tables:
entries signed with voucher_service.ledger (Entry, Posting, sign_entry), their
Merkle nodes via merkle.nodes_for_append, posting and ref rows, balances, and
the business rows that must agree with them (so reconciliation's checks pass).
A checkpoint of the final size, signed by the log key that `vouchers init`
makes, is stored too (no witnesses: the benchmarks that need cosignatures run
their own).

The result is an SQLite file per size under bench/.cache (git-ignored); the
build is deterministic, so the 100k ledger is the first 100k entries of the
1M one and both come out of one build. `--check` runs the service's own
invariant checks and a reconciliation statement on the result.
"""
from __future__ import annotations

import argparse
import heapq
import os
import random
import shutil
import sqlite3
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import CACHE_DIR, ORIGIN, PASSPHRASE, REPO, build_app  # noqa: E402

from voucher_service.ledger.accounts import (budget_account, held_account, may_go_negative, paid_account,  # noqa: E402
                                             payable_account, treasury_account, voucher_account)

# 2: migration 0004 (registry_version on the ledger head).
# 3: a log key (DESIGN §10), which signs the stored checkpoint, as on a deployment made today.
BUILDER_VERSION = 3
SIZES = (100_000, 300_000, 1_000_000)
T0 = datetime(2025, 1, 2, 0, 0, tzinfo=timezone.utc)
MEAN_GAP_S = 45.0          # between two entries: 1M entries span about 17 months
ENTERPRISES_PER_REGION = 2000
PROVIDERS_PER_REGION = 60
LOCAL = ZoneInfo("Asia/Shanghai")
BATCH = 20_000


def keys_dir() -> str:
    return os.path.join(CACHE_DIR, f"keys-v{BUILDER_VERSION}")


def ledger_path(size: int) -> str:
    return os.path.join(CACHE_DIR, f"ledger-v{BUILDER_VERSION}-{size}.db")


def ledger_url(size: int) -> str:
    return f"sqlite:///{ledger_path(size)}"


def ensure_ledger(size: int, *, quiet: bool = False) -> str:
    """The path of the cached SQLite ledger of `size` entries (built if missing)."""
    path = ledger_path(size)
    if not os.path.exists(path):
        build(size, quiet=quiet)
    return path


def rfc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- seeds through the domain layer ---------------------------------------------------

def _init_database(path: str) -> None:
    from sqlmodel import Session

    from voucher_service.cli import migrate
    from voucher_service.cli.seeds import load_seeds
    from voucher_service.db import get_engine
    from voucher_service.programme import writes
    from voucher_service.programme.context import Context

    app = build_app(f"sqlite:///{path}", keys_dir())
    with app.app_context():
        engine = get_engine()
        migrate.upgrade(engine)
        clock = [T0]

        def now():
            clock[0] += timedelta(seconds=1)
            return clock[0]

        # The write path reads the clock after the ledger lock (programme/writes.py).
        original = writes.utc_now
        writes.utc_now = now  # the seeds' entries dated 2025-01-02, before the simulated activity
        try:
            with Session(engine, expire_on_commit=False) as session:
                keyring = app.extensions["vouchers_keyring"]
                ctx = Context(session=session, signer=keyring.signer_for(session), actor="system:init", now=T0)
                load_seeds(ctx, os.path.join(REPO, "seeds"), keyring=keyring, origin=ORIGIN)
                keyring.create_log_key(session, origin=ORIGIN, now_str=rfc(T0))
                session.commit()
        finally:
            writes.utc_now = original
        engine.dispose()


# --- the simulation -----------------------------------------------------------------------

def _uscc(rng: random.Random, division: str) -> str:
    from voucher_service.providers.uscc import _org_check_char, uscc_check_char
    org8 = "".join(rng.choice("0123456789") for _ in range(8))
    first17 = "91" + division + org8 + _org_check_char(org8)
    return first17 + uscc_check_char(first17)


DIVISIONS = {"SH": "310115", "KS": "320583", "WJ": "320509"}


class Builder:
    def __init__(self, path: str, target: int, quiet: bool):
        from voucher_service.journal.keys import KeyRing
        from voucher_service.ledger import merkle
        self.merkle = merkle
        self.rng = random.Random(20250102)
        self.path, self.target, self.quiet = path, target, quiet
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.db.execute("BEGIN")
        q = self.db.execute
        self.seq = q("SELECT size FROM ledger_head WHERE id = 1").fetchone()[0]
        self.clock = datetime.fromisoformat(q("SELECT max(ts) FROM ledger_entry").fetchone()[0].replace("Z", "+00:00"))
        keyring = KeyRing(keys_dir(), PASSPHRASE)
        self.keys = {region: keyring.load(key_id) for key_id, region in
                     q("SELECT key_id, region FROM signing_key WHERE valid_until IS NULL AND purpose = 'entry'")}
        ((log_key_id, log_name),) = q("SELECT key_id, note_name FROM signing_key "
                                      "WHERE valid_until IS NULL AND purpose = 'log'")
        self.log_name, self.log_key = log_name, keyring.load(log_key_id)
        self.regions = [r for (r,) in q("SELECT code FROM region ORDER BY code")]
        self.policies = defaultdict(list)
        self._policy_cache = {}
        for row in q("SELECT region, effective_from, enterprise_cap_fen, team_cap_fen, subsidy_ratio_bp, "
                     "validity_days, payout_cycle, budget_fen FROM policy ORDER BY effective_from"):
            self.policies[row[0]].append(dict(zip(("region", "effective_from", "enterprise_cap", "team_cap", "ratio",
                                                   "validity_days", "cycle", "budget"), row)))
        self.items = [dict(zip(("code", "category", "ratio"), row)) for row in
                      q("SELECT code, category, max_subsidy_ratio_bp FROM catalog_item WHERE active")]
        self.providers = {pid: {"region": region, "status": status} for pid, region, status in
                          q("SELECT id, region, status FROM provider")}
        self.by_category = defaultdict(list)
        for pid, category in q("SELECT provider_id, category FROM provider_category"):
            if self.providers[pid]["status"] == "active":
                self.by_category[category].append(pid)
        self.enterprises = {eid: {"region": region, "kind": kind, "granted": defaultdict(int), "related": set()}
                            for eid, region, kind in q("SELECT id, region, kind FROM enterprise")}
        for eid, pid in q("SELECT enterprise_id, provider_id FROM enterprise_related_provider"):
            self.enterprises[eid]["related"].add(pid)
        self.by_region = defaultdict(list)
        for eid, enterprise in self.enterprises.items():
            self.by_region[enterprise["region"]].append(eid)
        self.balances = defaultdict(int)
        for name, balance in q("SELECT name, balance_fen FROM account"):
            self.balances[name] = balance
        # Merkle: the latest stored node of each level is all an append reads.
        self.latest = {}
        for key, value in q("SELECT id, hash FROM ledger_node ORDER BY id"):
            level, index = key & 63, key >> 6
            if level not in self.latest or self.latest[level][0] < index:
                self.latest[level] = (index, bytes(value))
        self.stack = self._stack_from_db()
        self.actors = {f"officer:{r}": self._id("usr") for r in self.regions}
        for region in self.regions:
            self.actors[f"finance:{region}:a"] = self._id("usr")
            self.actors[f"finance:{region}:b"] = self._id("usr")
        self.sme_actor = {}
        # Business objects (written in full at every snapshot).
        self.new_enterprises, self.new_providers = [], []
        self.applications, self.vouchers, self.redemptions = {}, {}, {}
        self.settlements, self.settlement_lines, self.settlement_redemptions, self.approvals = [], [], [], []
        self.spendable = []            # voucher ids that may have room
        self.stage = {"reserved": [], "claimed": [], "confirmed": []}
        self.redeemed_unsettled = defaultdict(list)  # region -> redemption ids
        self.expiry = []               # heap of (valid_until, voucher id)
        self.rows = defaultdict(list)  # table -> pending rows
        self.day = self.clock.astimezone(LOCAL).date()

    # --- helpers
    def _id(self, prefix: str) -> str:
        ms = int(self.clock.timestamp() * 1000)
        return f"{prefix}_{ms:011x}{self.rng.getrandbits(64):016x}"

    def policy(self, region: str, day: date) -> dict:
        key = (region, day)
        if key not in self._policy_cache:
            current = None
            for p in self.policies[region]:
                if date.fromisoformat(str(p["effective_from"])) <= day:
                    current = p
            self._policy_cache[key] = current
        return self._policy_cache[key]

    def _stack_from_db(self):
        # The running tree's perfect subtrees, from the stored nodes of the current size.
        size, stack = self.seq, []
        for level, index in self.merkle.subtree_nodes(0, size) if size else []:
            (value,) = self.db.execute("SELECT hash FROM ledger_node WHERE id = ?",
                                       (self.merkle.node_key((level, index)),)).fetchone()
            stack.append((level, bytes(value)))
        return stack

    def tick(self) -> None:
        self.clock += timedelta(seconds=self.rng.expovariate(1 / MEAN_GAP_S))

    def emit(self, kind: str, region: str, actor: str, refs: dict, postings=(), data=None) -> str:
        from voucher_service.ledger import Entry, Posting, leaf_hash, sign_entry
        postings = [Posting(*p) for p in postings]
        ts = rfc(self.clock)
        seq = self.seq
        entry = Entry(seq=seq, ts=ts, kind=kind, region=region, actor=actor, refs=refs, postings=tuple(postings),
                      data=data or {})
        key = self.keys[region]
        signed = sign_entry(entry, key)
        leaf = leaf_hash(signed)
        self.rows["ledger_entry"].append((seq, ts, kind, region, actor, key.key_id, signed, leaf))
        for node, value in self.merkle.nodes_for_append(seq, leaf, lambda nodes: [self.latest[n[0]][1] for n in nodes]):
            self.latest[node[0]] = (node[1], value)
            self.rows["ledger_node"].append((self.merkle.node_key(node), value))
        level, current = 0, leaf
        while self.stack and self.stack[-1][0] == level:
            current = self.merkle.node_hash(self.stack.pop()[1], current)
            level += 1
        self.stack.append((level, current))
        for ref in sorted(set(refs.values())):
            self.rows["ledger_ref"].append((seq, ref))
        for position, p in enumerate(postings):
            self.rows["ledger_posting"].append((seq, position, ts, kind, region, p.source, p.destination, p.amount))
            self.balances[p.source] -= p.amount
            self.balances[p.destination] += p.amount
            if self.balances[p.source] < 0 and not may_go_negative(p.source):
                raise AssertionError(f"seq {seq}: {p.source} would go negative")
        self.seq += 1
        if len(self.rows["ledger_entry"]) >= BATCH:
            self.flush_ledger()
        return ts

    def flush_ledger(self) -> None:
        q = self.db.executemany
        q("INSERT INTO ledger_entry (seq, ts, kind, region, actor, key_id, canonical, leaf_hash) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.rows.pop("ledger_entry", []))
        q("INSERT INTO ledger_node (id, hash) VALUES (?, ?)", self.rows.pop("ledger_node", []))
        q("INSERT INTO ledger_ref (seq, ref) VALUES (?, ?)", self.rows.pop("ledger_ref", []))
        q("INSERT INTO ledger_posting (seq, position, ts, kind, region, source, destination, amount_fen) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.rows.pop("ledger_posting", []))
        q("INSERT INTO enterprise (id, name, uscc, region, kind, created_at) VALUES (?, ?, ?, ?, ?, ?)",
          self.new_enterprises)
        self.new_enterprises = []
        q("INSERT INTO provider (id, name, uscc, region, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
          [p[:7] for p in self.new_providers])
        q("INSERT INTO provider_category (provider_id, category) VALUES (?, ?)",
          [(p[0], c) for p in self.new_providers for c in p[7]])
        self.new_providers = []

    # --- the programme's actions
    def register_enterprise(self, region: str) -> None:
        self.tick()
        eid = self._id("ent")
        kind = "team" if self.rng.random() < 0.15 else "enterprise"
        name = f"{region} 科创企业 {len(self.by_region[region]) + 1:05d} 有限公司"
        uscc = _uscc(self.rng, DIVISIONS.get(region, "310000"))
        ts = self.emit("enterprise.registered", region, self.actors[f"officer:{region}"], {"enterprise": eid},
                       data={"name": name, "uscc": uscc, "kind": kind, "related_provider_ids": []})
        self.new_enterprises.append((eid, name, uscc, region, kind, ts))
        self.enterprises[eid] = {"region": region, "kind": kind, "granted": defaultdict(int), "related": set()}
        self.by_region[region].append(eid)

    def register_provider(self, region: str) -> None:
        self.tick()
        pid = self._id("prv")
        categories = sorted(self.rng.sample(sorted({i["category"] for i in self.items}), self.rng.choice((1, 2, 3))))
        name = f"{region} 技术服务机构 {pid[-6:]}"
        uscc = _uscc(self.rng, DIVISIONS.get(region, "310000"))
        ts = self.emit("provider.registered", region, self.actors[f"officer:{region}"], {"provider": pid},
                       data={"name": name, "uscc": uscc, "categories": categories, "status": "active"})
        self.new_providers.append((pid, name, uscc, region, "active", ts, ts, categories))
        self.providers[pid] = {"region": region, "status": "active"}
        for category in categories:
            self.by_category[category].append(pid)

    def fund_if_low(self, region: str, needed: int) -> None:
        if self.balances[budget_account(region)] >= needed:
            return
        policy = self.policy(region, self.day)
        amount = max(policy["budget"] // 10, needed * 20)
        self.tick()
        self.emit("budget.funded", region, self.actors[f"finance:{region}:a"], {"region": region},
                  postings=[(treasury_account(region), budget_account(region), amount)], data={"amount_fen": amount})

    def issue_voucher(self) -> None:
        region = self.rng.choice(self.regions)
        eid = self.rng.choice(self.by_region[region])
        enterprise = self.enterprises[eid]
        policy = self.policy(region, self.day)
        cap = policy["team_cap"] if enterprise["kind"] == "team" else policy["enterprise_cap"]
        room = cap - enterprise["granted"][self.day.year]
        requested = self.rng.randrange(50_000, 500_001, 1000) * 10  # 5k-50k CNY
        amount = min(requested, room)
        if amount < 100_000:
            return
        self.fund_if_low(region, amount)
        actor = self.sme_actor.setdefault(eid, self._id("usr"))
        self.tick()
        app_id = self._id("app")
        purpose = self.rng.choice(("产品检测认证", "委托研发", "知识产权布局", "大型仪器共享使用", "技术转移服务"))
        submitted = self.emit("application.submitted", region, actor, {"application": app_id, "enterprise": eid},
                              data={"amount_fen": requested, "purpose": purpose})
        self.tick()
        vid = self._id("vch")
        code = f"{region}-{self.day.year}-{self.rng.getrandbits(40):010X}"
        valid_until = self.day + timedelta(days=policy["validity_days"] - 1)
        issued = self.emit("voucher.issued", region, self.actors[f"officer:{region}"],
                           {"application": app_id, "voucher": vid, "enterprise": eid},
                           postings=[(budget_account(region), voucher_account(vid), amount)],
                           data={"code": code, "face_fen": amount, "valid_from": self.day.isoformat(),
                                 "valid_until": valid_until.isoformat(), "requested_fen": requested})
        enterprise["granted"][self.day.year] += amount
        self.applications[app_id] = (app_id, eid, region, requested, purpose, "approved", amount, vid,
                                     self.actors[f"officer:{region}"], None, submitted, issued)
        self.vouchers[vid] = {"id": vid, "code": code, "application_id": app_id, "enterprise_id": eid,
                              "region": region, "face": amount, "available": amount, "held": 0, "redeemed": 0,
                              "returned": 0, "status": "active", "valid_from": self.day.isoformat(),
                              "valid_until": valid_until.isoformat(), "issued_at": issued, "closed_at": None}
        self.spendable.append(vid)
        heapq.heappush(self.expiry, (valid_until.isoformat(), vid))

    @staticmethod
    def _take(pool: list, rng: random.Random):
        index = rng.randrange(len(pool))
        pool[index], pool[-1] = pool[-1], pool[index]
        return pool.pop()

    def _refs(self, r: dict) -> dict:
        return {"redemption": r["id"], "voucher": r["voucher_id"], "enterprise": r["enterprise_id"],
                "provider": r["provider_id"]}

    def reserve(self) -> None:
        while self.spendable:
            vid = self._take(self.spendable, self.rng)
            voucher = self.vouchers[vid]
            if voucher["status"] == "active" and voucher["available"] >= 10_000 and voucher["valid_until"] >= \
                    self.day.isoformat():
                break
        else:
            return
        item = self.rng.choice(self.items)
        enterprise = self.enterprises[voucher["enterprise_id"]]
        candidates = [p for p in self.by_category[item["category"]] if p not in enterprise["related"]]
        if not candidates:
            self.spendable.append(vid)
            return
        provider = self.rng.choice(candidates)
        ratio = min(item["ratio"], self.policy(voucher["region"], self.day)["ratio"])
        fee = self.rng.randrange(20_000, 400_001, 100) * 10
        amount = min(voucher["available"], fee * ratio // 10_000)
        if amount <= 0:
            self.spendable.append(vid)
            return
        self.tick()
        rid = self._id("rdm")
        redemption = {"id": rid, "voucher_id": vid, "enterprise_id": voucher["enterprise_id"],
                      "provider_id": provider, "region": voucher["region"], "catalog_code": item["code"],
                      "service_fee": fee, "amount": amount, "status": "reserved", "invoice_no": None,
                      "reason": None, "reserved_at": None, "claimed_at": None, "confirmed_at": None,
                      "redeemed_at": None, "cancelled_at": None, "rejected_at": None, "settled_at": None}
        voucher["available"] -= amount
        voucher["held"] += amount
        redemption["reserved_at"] = self.emit(
            "redemption.reserved", voucher["region"], self.sme_actor[voucher["enterprise_id"]],
            self._refs(redemption), postings=[(voucher_account(vid), held_account(vid), amount)],
            data={"catalog_code": item["code"], "service_fee_fen": fee, "amount_fen": amount})
        self.redemptions[rid] = redemption
        self.stage["reserved"].append(rid)
        if voucher["available"] >= 10_000:
            self.spendable.append(vid)

    def _release(self, voucher: dict, amount: int) -> list:
        vid = voucher["id"]
        postings = [(held_account(vid), voucher_account(vid), amount)]
        if voucher["status"] in ("active", "exhausted"):
            voucher["available"] += amount
            if voucher["status"] == "exhausted":
                voucher["status"] = "active"
            if voucher["available"] >= 10_000:
                self.spendable.append(vid)
        else:
            voucher["returned"] += amount
            postings.append((voucher_account(vid), budget_account(voucher['region']), amount))
        voucher["held"] -= amount
        return postings

    def claim(self) -> None:
        if not self.stage["reserved"]:
            return
        r = self.redemptions[self._take(self.stage["reserved"], self.rng)]
        voucher = self.vouchers[r["voucher_id"]]
        self.tick()
        if self.rng.random() < 0.08:  # the SME cancels instead
            postings = self._release(voucher, r["amount"])
            r["status"], r["reason"] = "cancelled", "服务计划调整"
            r["cancelled_at"] = self.emit("redemption.cancelled", r["region"], self.sme_actor[r["enterprise_id"]],
                                          self._refs(r), postings=postings,
                                          data={"amount_fen": r["amount"], "reason": r["reason"]})
            return
        reserved = r["amount"]
        amount, fee = reserved, r["service_fee"]
        if self.rng.random() < 0.2:  # the final fee came in lower
            fee = max(fee * self.rng.randrange(80, 100) // 100, 1)
            ratio = min(next(i["ratio"] for i in self.items if i["code"] == r["catalog_code"]),
                        self.policy(r["region"], self.day)["ratio"])
            amount = max(1, min(reserved, fee * ratio // 10_000))
        postings = self._release(voucher, reserved - amount) if reserved > amount else []
        invoice = f"INV{self.rng.getrandbits(40):012d}"
        r.update(status="claimed", invoice_no=invoice, service_fee=fee, amount=amount)
        r["claimed_at"] = self.emit("redemption.claimed", r["region"], f"usr_provider_{r['provider_id'][-8:]}",
                                    self._refs(r), postings=postings,
                                    data={"invoice_no": invoice, "service_fee_fen": fee, "amount_fen": amount,
                                          "reserved_fen": reserved})
        self.stage["claimed"].append(r["id"])

    def confirm(self) -> None:
        if not self.stage["claimed"]:
            return
        r = self.redemptions[self._take(self.stage["claimed"], self.rng)]
        self.tick()
        r["status"] = "confirmed"
        r["confirmed_at"] = self.emit("redemption.confirmed", r["region"], self.sme_actor[r["enterprise_id"]],
                                      self._refs(r), data={"amount_fen": r["amount"]})
        self.stage["confirmed"].append(r["id"])

    def redeem(self) -> None:
        if not self.stage["confirmed"]:
            return
        r = self.redemptions[self._take(self.stage["confirmed"], self.rng)]
        voucher = self.vouchers[r["voucher_id"]]
        self.tick()
        voucher["held"] -= r["amount"]
        voucher["redeemed"] += r["amount"]
        if voucher["status"] == "active" and voucher["available"] == 0 and voucher["held"] == 0:
            voucher["status"] = "exhausted"
        r["status"] = "redeemed"
        r["redeemed_at"] = self.emit(
            "redemption.redeemed", r["region"], self.actors[f"officer:{r['region']}"], self._refs(r),
            postings=[(held_account(voucher['id']), payable_account(r['region'], r['provider_id']), r["amount"])],
            data={"amount_fen": r["amount"], "invoice_no": r["invoice_no"]})
        self.redeemed_unsettled[r["region"]].append(r["id"])

    def void(self) -> None:
        if not self.spendable:
            return
        vid = self.rng.choice(self.spendable)
        voucher = self.vouchers[vid]
        if voucher["status"] not in ("active", "exhausted") or voucher["held"]:
            return
        self.tick()
        self._close(voucher, "voided", "voucher.voided", {"reason": "企业申请注销"})

    def _close(self, voucher: dict, status: str, kind: str, data: dict) -> None:
        returned = voucher["available"]
        voucher["returned"] += returned
        voucher["available"] = 0
        voucher["status"] = status
        postings = [(voucher_account(voucher['id']), budget_account(voucher['region']), returned)] if returned else []
        voucher["closed_at"] = self.emit(kind, voucher["region"], self.actors[f"officer:{voucher['region']}"]
                                         if status == "voided" else "system:expire",
                                         {"voucher": voucher["id"], "enterprise": voucher["enterprise_id"]},
                                         postings=postings, data={**data, "returned_fen": returned})

    def new_day(self, day: date) -> None:
        """Local midnight passed: expire vouchers, and settle periods that ended."""
        due = []
        while self.expiry and self.expiry[0][0] < day.isoformat():
            due.append(heapq.heappop(self.expiry)[1])
        for vid in sorted(due):
            voucher = self.vouchers[vid]
            if voucher["status"] in ("active", "exhausted"):
                self.tick()
                self._close(voucher, "expired", "voucher.expired", {"as_of": day.isoformat()})
        if day.day == 1:
            previous = day - timedelta(days=1)
            for region in self.regions:
                cycle = self.policy(region, previous)["cycle"]
                if cycle == "monthly":
                    self.settle(region, f"{previous.year}-{previous.month:02d}")
                elif day.month in (1, 4, 7, 10):
                    self.settle(region, f"{previous.year}-Q{(previous.month - 1) // 3 + 1}")

    def settle(self, region: str, label: str) -> None:
        from voucher_service.payout.netting import net_positions
        from voucher_service.payout.periods import parse_period
        start, end = parse_period(label).bounds_utc()
        due, keep = [], []
        for rid in self.redeemed_unsettled[region]:
            (due if start <= self.redemptions[rid]["redeemed_at"] < end else keep).append(rid)
        if not due:
            return
        self.redeemed_unsettled[region] = keep
        due.sort()
        by_provider = defaultdict(list)
        for rid in due:
            r = self.redemptions[rid]
            by_provider[(r["provider_id"], self.providers[r["provider_id"]]["region"])].append(r)
        sid = self._id("stl")
        total = sum(self.redemptions[rid]["amount"] for rid in due)
        lines = [{"provider_id": pid, "provider_region": preg, "amount_fen": sum(r["amount"] for r in rs),
                  "redemption_count": len(rs)} for (pid, preg), rs in sorted(by_provider.items())]
        positions = net_positions((region, line["provider_region"], line["amount_fen"]) for line in lines)
        required = sorted({region} | {line["provider_region"] for line in lines})
        creator = self.actors[f"finance:{region}:a"]
        self.tick()
        created = self.emit("settlement.created", region, creator, {"settlement": sid, "region": region},
                            data={"period": label, "total_fen": total, "lines": lines, "positions": positions,
                                  "approvals_required": required})
        approved_regions = []
        approved_at = None
        for approver_region in required:
            approver = self.actors[f"finance:{approver_region}:b"]
            approved_regions.append(approver_region)
            self.tick()
            status = "approved" if approved_regions == required else "draft"
            at = self.emit("settlement.approved", approver_region, approver, {"settlement": sid, "region": region},
                           data={"approved_regions": list(approved_regions), "approvals_required": required,
                                 "status": status})
            self.approvals.append((sid, approver_region, approver, at))
            approved_at = at
        self.tick()
        executed = self.emit("settlement.executed", region, creator, {"settlement": sid, "region": region},
                             postings=[(payable_account(region, line['provider_id']), paid_account(line['provider_id']),
                                        line["amount_fen"]) for line in lines],
                             data={"period": label, "total_fen": total, "redemption_count": len(due)})
        for rid in due:
            self.redemptions[rid]["status"] = "settled"
            self.redemptions[rid]["settled_at"] = executed
            self.settlement_redemptions.append((sid, rid, rid))
        for line in lines:
            self.settlement_lines.append((sid, line["provider_id"], line["provider_region"], line["amount_fen"],
                                          line["redemption_count"]))
        self.settlements.append((sid, region, label, start, end, "executed", total, creator, created, approved_at,
                                 executed, creator))

    # --- the loop
    def run(self, snapshots) -> None:
        started = time.perf_counter()
        for region in self.regions:
            for _ in range(PROVIDERS_PER_REGION):
                self.register_provider(region)
        for region in self.regions:
            for _ in range(ENTERPRISES_PER_REGION // 4):
                self.register_enterprise(region)
        actions = [(self.issue_voucher, 0.05), (self.reserve, 0.245), (self.claim, 0.24), (self.confirm, 0.225),
                   (self.redeem, 0.225), (self.void, 0.002), ("enterprise", 0.013)]
        choices, weights = zip(*actions)
        pending = sorted(s for s in snapshots if s <= self.target)
        last_report = started
        while self.seq < self.target:
            day = self.clock.astimezone(LOCAL).date()
            if day != self.day:
                self.day = day
                self.new_day(day)
            action = self.rng.choices(choices, weights)[0]
            if action == "enterprise":
                region = self.rng.choice(self.regions)
                if len(self.by_region[region]) < ENTERPRISES_PER_REGION:
                    self.register_enterprise(region)
            else:
                action()
            while pending and self.seq >= pending[0]:
                # At an action's end, so that the business rows agree with the entries: a
                # snapshot named N holds N entries or the few more that action wrote.
                self.snapshot(pending.pop(0))
            if not self.quiet and time.perf_counter() - last_report > 15:
                last_report = time.perf_counter()
                rate = (self.seq) / (last_report - started)
                print(f"   built {self.seq:,} entries ({rate:,.0f}/s), simulated clock {rfc(self.clock)[:10]}",
                      flush=True)

    def snapshot(self, size: int) -> None:
        self.flush_ledger()
        self.write_state()
        self.db.execute("COMMIT")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        target = ledger_path(size)
        tmp = target + ".tmp"
        shutil.copyfile(self.path, tmp)
        os.replace(tmp, target)
        if not self.quiet:
            print(f"   snapshot of {size:,} entries: {os.path.relpath(target, REPO)} "
                  f"({os.path.getsize(target) / 2**20:,.0f} MiB)", flush=True)
        self.db.execute("BEGIN")

    def write_state(self) -> None:
        from voucher_service.ledger import merkle
        from voucher_service.ledger.note import Checkpoint, sign_note
        q = self.db.executemany
        q("INSERT OR REPLACE INTO application (id, enterprise_id, region, amount_fen, purpose, status, approved_fen, "
          "voucher_id, decided_by, reason, submitted_at, decided_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
          self.applications.values())
        q("INSERT OR REPLACE INTO voucher (id, code, application_id, enterprise_id, region, face_fen, available_fen, "
          "held_fen, redeemed_fen, returned_fen, status, valid_from, valid_until, issued_at, closed_at) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
          [(v["id"], v["code"], v["application_id"], v["enterprise_id"], v["region"], v["face"], v["available"],
            v["held"], v["redeemed"], v["returned"], v["status"], v["valid_from"], v["valid_until"], v["issued_at"],
            v["closed_at"]) for v in self.vouchers.values()])
        q("INSERT OR REPLACE INTO redemption (id, voucher_id, enterprise_id, provider_id, region, catalog_code, "
          "service_fee_fen, amount_fen, status, invoice_no, reason, reserved_at, claimed_at, confirmed_at, "
          "redeemed_at, cancelled_at, rejected_at, settled_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
          [(r["id"], r["voucher_id"], r["enterprise_id"], r["provider_id"], r["region"], r["catalog_code"],
            r["service_fee"], r["amount"], r["status"], r["invoice_no"], r["reason"], r["reserved_at"],
            r["claimed_at"], r["confirmed_at"], r["redeemed_at"], r["cancelled_at"], r["rejected_at"],
            r["settled_at"]) for r in self.redemptions.values()])
        q("INSERT OR IGNORE INTO settlement (id, region, period, period_start, period_end, status, total_fen, "
          "created_by, created_at, approved_at, executed_at, executed_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
          self.settlements)
        q("INSERT OR IGNORE INTO settlement_line (settlement_id, provider_id, provider_region, amount_fen, "
          "redemption_count) VALUES (?,?,?,?,?)", self.settlement_lines)
        q("INSERT OR IGNORE INTO settlement_redemption (settlement_id, redemption_id, live_redemption_id) "
          "VALUES (?,?,?)", self.settlement_redemptions)
        q("INSERT OR IGNORE INTO settlement_approval (settlement_id, region, principal_id, approved_at) "
          "VALUES (?,?,?,?)", self.approvals)
        q("INSERT OR REPLACE INTO account (name, balance_fen) VALUES (?, ?)", self.balances.items())
        self.db.execute("UPDATE ledger_head SET size = ? WHERE id = 1", (self.seq,))
        root = merkle.fold([h for _level, h in self.stack])
        note = sign_note(Checkpoint(ORIGIN, self.seq, root).text(),
                         [(self.log_name, self.log_key.sign, self.log_key.public_key_raw)])
        self.db.execute("INSERT OR REPLACE INTO ledger_checkpoint (size, root_hash, note, created_at) "
                        "VALUES (?, ?, ?, ?)", (self.seq, root, note, rfc(self.clock + timedelta(seconds=1))))


def build(target: int, *, quiet: bool = False) -> None:
    os.makedirs(CACHE_DIR, exist_ok=True)
    work = os.path.join(CACHE_DIR, f"building-{os.getpid()}.db")
    started = time.perf_counter()
    if not quiet:
        print(f"   building a ledger of {target:,} entries (once; cached in {os.path.relpath(CACHE_DIR, REPO)})",
              flush=True)
    try:
        _init_database(work)
        builder = Builder(work, target, quiet)
        builder.run(set(SIZES) | {target})
        builder.db.close()
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(work + suffix):
                os.remove(work + suffix)
    if not quiet:
        print(f"   built in {time.perf_counter() - started:.0f} s", flush=True)


def check(size: int) -> None:
    """The service's own checks on a built ledger: invariants and one reconciliation statement."""
    from sqlmodel import Session

    from voucher_service.db import get_engine
    from voucher_service.journal.integrity import check_all
    from voucher_service.payout.reconciliation import build_statement
    app = build_app(ledger_url(size), keys_dir())
    with app.app_context(), Session(get_engine()) as session:
        started = time.perf_counter()
        problems = check_all(session)
        print(f"invariants.check_all: {len(problems)} problems in {time.perf_counter() - started:.1f} s",
              problems[:5])
        last_ts = session.exec(__import__("sqlmodel").text("SELECT max(ts) FROM ledger_entry")).one()[0]
        moment = datetime.fromisoformat(last_ts.replace("Z", "+00:00")).astimezone(LOCAL)
        for region in ("SH", "KS", "WJ"):
            statement = build_statement(session, region, f"{moment.year}-{moment.month:02d}")
            bad = [c for c in statement["checks"] if not c["ok"]]
            print(f"reconciliation {region} {moment.year}-{moment.month:02d}: {len(bad)} failing checks",
                  [(c["name"], c["expected"], c["actual"]) for c in bad])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k entries")
    parser.add_argument("--check", action="store_true", help="run invariants and reconciliation checks on it")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="also load it into a cached PostgreSQL database")
    parser.add_argument("--clean", action="store_true", help="drop the cached PostgreSQL ledgers, delete bench/.cache")
    args = parser.parse_args()
    if args.clean:
        clean()
        return
    if args.quick:
        args.entries = 100_000
    if args.rebuild and os.path.exists(ledger_path(args.entries)):
        os.remove(ledger_path(args.entries))
    path = ensure_ledger(args.entries)
    print(f"{path}: {os.path.getsize(path) / 2**20:,.0f} MiB")
    if args.postgres:
        from _common import postgres_available
        if postgres_available():
            print(ensure_postgres_ledger(args.entries))
        else:
            print("no PostgreSQL answers: its benchmarks will be skipped")
    if args.check:
        check(args.entries)



# --- the export, checkpoint and keys of a built ledger, as an auditor downloads them ---------

def export_paths(size: int) -> dict:
    stem = os.path.join(CACHE_DIR, f"export-v{BUILDER_VERSION}-{size}")
    return {"export": stem + ".jsonl", "checkpoint": stem + ".checkpoint", "keys": stem + ".keys.json"}


def auditor_token(app) -> str:
    """A bench auditor token (the one row the benchmarks add to a cached ledger: not a ledger change)."""
    from sqlmodel import Session

    from voucher_service.db import get_engine
    from voucher_service.http import auth
    with app.app_context(), Session(get_engine()) as session:
        token, _row = auth.create_token(session, role="auditor", principal_id="bench:auditor")
        session.commit()
    return token


def download_export(size: int, out_path: str | None = None, url: str | None = None) -> dict:
    """GET /ledger/export, /checkpoint and /keys through the app (test client, streamed);
    returns the paths, the bytes and the seconds the export took."""
    paths = export_paths(size)
    ensure_ledger(size)
    app = build_app(url or ledger_url(size), keys_dir())
    token = auditor_token(app)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for name, path in (("checkpoint", "/api/v1/ledger/checkpoint"), ("keys", "/api/v1/ledger/keys")):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        with open(paths[name], "wb") as handle:
            handle.write(response.get_data())
    target = out_path or paths["export"]
    started = time.perf_counter()
    response = client.get("/api/v1/ledger/export", headers=headers, buffered=False)
    assert response.status_code == 200, response.status_code
    written = 0
    with open(target + ".tmp", "wb") as handle:
        for chunk in response.response:
            handle.write(chunk)
            written += len(chunk)
    response.close()
    elapsed = time.perf_counter() - started
    os.replace(target + ".tmp", target)
    return {**paths, "export": target, "bytes": written, "seconds": elapsed,
            "tree_size": int(response.headers["Ledger-Tree-Size"])}


def ensure_export(size: int) -> dict:
    paths = export_paths(size)
    if not all(os.path.exists(p) for p in paths.values()):
        download_export(size)
    return paths


# --- a PostgreSQL copy of a built ledger ---------------------------------------------------

PG_CACHE_PREFIX = f"vbench_cache_ledger_v{BUILDER_VERSION}_"
COPY_ORDER = ("region", "policy", "catalog_category", "catalog_item", "provider", "provider_category", "enterprise",
              "enterprise_related_provider", "application", "voucher", "redemption", "signing_key", "ledger_head",
              "ledger_entry", "ledger_ref", "ledger_posting", "ledger_node", "ledger_checkpoint", "settlement",
              "settlement_line", "settlement_redemption", "settlement_approval", "account", "api_token",
              "idempotency_record")


def postgres_ledger_url(size: int) -> str:
    from _common import pg_url
    return pg_url(f"{PG_CACHE_PREFIX}{size}")


def ensure_postgres_ledger(size: int, *, quiet: bool = False) -> str:
    """A PostgreSQL database holding the cached SQLite ledger of `size`, migrated with
    voucher_service.cli.migrate.upgrade and filled with COPY. Kept between runs (as the
    SQLite file is) under the name vbench_cache_ledger_v<version>_<size>; dropped by
    `python bench/ledger_data.py --clean`."""
    import psycopg
    from _common import _pg_admin
    from sqlalchemy import create_engine

    from voucher_service.cli import migrate
    url = postgres_ledger_url(size)
    path = ensure_ledger(size, quiet=quiet)
    with sqlite3.connect(path) as source:
        expected = source.execute("SELECT size FROM ledger_head").fetchone()[0]
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain) as db:
            if db.execute("SELECT size FROM ledger_head").fetchone()[0] == expected and \
                    db.execute("SELECT count(*) FROM vbench_loaded").fetchone()[0] == 1:
                return url
    except psycopg.Error:
        pass
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_admin(f'CREATE DATABASE "{name}"')
    started = time.perf_counter()
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    with sqlite3.connect(path) as source, psycopg.connect(plain) as db:
        db.execute("SET session_replication_role = replica")  # no FK triggers while loading
        for table in COPY_ORDER:
            db.execute(f"DELETE FROM {table}")
        for table in COPY_ORDER:
            cursor = source.execute(f"SELECT * FROM {table}")
            columns = [c[0] for c in cursor.description]
            booleans = {c for c in columns if (table, c) in (("catalog_item", "active"),)}
            positions = [i for i, c in enumerate(columns) if c in booleans]
            with db.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in cursor:
                    if positions:
                        row = list(row)
                        for i in positions:
                            row[i] = bool(row[i])
                    copy.write_row(row)
        db.execute("CREATE TABLE vbench_loaded (builder_version int)")
        db.execute("INSERT INTO vbench_loaded VALUES (%s)", (BUILDER_VERSION,))
        db.commit()
    db = psycopg.connect(plain, autocommit=True)
    db.execute("VACUUM ANALYZE")
    db.close()
    if not quiet:
        print(f"   loaded the {size:,}-entry ledger into PostgreSQL in {time.perf_counter() - started:.0f} s "
              f"(cached as database {name})", flush=True)
    return url


def clean() -> None:
    """Drop the cached PostgreSQL ledgers and delete bench/.cache."""
    from _common import PG_ADMIN_URL, _pg_admin
    from sqlalchemy import create_engine
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as connection:
            names = [r[0] for r in connection.exec_driver_sql(
                "SELECT datname FROM pg_database WHERE datname LIKE 'vbench_%'")]
        engine.dispose()
        for name in names:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped database {name}")
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL: nothing to drop
        print(f"PostgreSQL not cleaned: {exc}")
    shutil.rmtree(CACHE_DIR, ignore_errors=True)
    print(f"removed {CACHE_DIR}")


if __name__ == "__main__":
    main()
