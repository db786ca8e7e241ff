"""The demo's story: each step a request, what came back, and the ledger entries it wrote."""
from __future__ import annotations

import uuid

import click
from flask import current_app

from voucher_service.cli.client import API_PREFIX as API
from voucher_service.cli.client import ApiClient, Reply
from voucher_service.cli.demo.scenario import (
    CATALOG_CODE,
    CLAIM_FEE_FEN,
    ENTERPRISE_ID,
    FACE_FEN,
    HOME_REGION,
    OVER_BY_FEN,
    OVER_FEE_FEN,
    PROVIDER_ID,
    PROVIDER_REGION,
    RESERVE_FEE_FEN,
    SECOND_CATALOG_CODE,
    SECOND_FEE_FEN,
    demo_pdf,
)
from voucher_service.cli.demo.tokens import TOKEN_OPTIONS, Tokens
from voucher_service.cli.demo.view import (
    DemoFailure,
    Ledger,
    balances_lines,
    cny,
    ledger_lines,
    phrase,
    send,
    step_line,
)
from voucher_service.ledger.accounts import held_account, voucher_account
from voucher_service.process.rules import max_subsidy_fen


class Demo:
    def __init__(self, client: ApiClient, tokens: Tokens, echo=click.echo):
        self.client = client
        self.tokens = tokens
        self.ledger = Ledger(client, tokens.auditor, self._expect)
        self.echo = echo
        self.run_id = uuid.uuid4().hex[:12]
        self.number = 0
        self.voucher_id: str | None = None
        self.seqs: list[int] = []

    # -- helpers

    def _key(self, name: str) -> str:
        return f"demo-{self.run_id}-{name}"

    def _expect(self, reply: Reply, expected: int, where: str) -> None:
        if reply.status == expected:
            if not isinstance(reply.json, dict):
                raise DemoFailure(f"{where}: HTTP {reply.status} without a JSON object: {reply.text[:200]}")
            return
        hint = ""
        if reply.status == 401 and self.tokens.minted_ids:
            hint = ("\nThe server rejected a token minted in this machine's database "
                    f"({current_app.config['DATABASE_URL']}): is the server using another database? "
                    "Run the demo with the server's DATABASE_URL, or pass tokens with --sme-token etc.")
        elif reply.status == 401:
            hint = f"\nCheck the tokens given with {TOKEN_OPTIONS}, --auditor-token."
        elif reply.status == 503:
            hint = "\nThe server is not ready: run `vouchers init` with its configuration."
        raise DemoFailure(f"{where}: expected HTTP {expected}, got {reply.status} {phrase(reply.status)}: "
                          f"{reply.problem}{hint}")

    def _voucher(self) -> dict | None:
        if self.voucher_id is None:
            return None
        reply = send(self.client, "GET", f"{API}/vouchers/{self.voucher_id}", self.tokens.sme)
        self._expect(reply, 200, f"step {self.number}, reading the voucher's balances")
        return reply.json

    def step(self, title: str, method: str, path: str, token: str, *, expected: int, body: dict | None = None,
             key: str | None = None, ref=None, outcome=None, no_entry: str | None = None,
             on_reply=None, check=None, form: dict | None = None, files: dict | None = None) -> Reply:
        """One request: print its line, the voucher's balances and the ledger entry it produced,
        after checking that the whole ledger replays to the voucher's available and held balances.

        `ref` (the id the entry concerns) and `outcome` (the text after the status) may be
        callables of the reply; `on_reply(reply)` runs before the balances are read;
        `check(reply, voucher)` may raise DemoFailure; `no_entry` says why the step writes no
        ledger entry (None: it must write one).
        """
        self.number += 1
        # Entries written before this step are not its own.
        self.ledger.read_new()
        reply = send(self.client, method, path, token, body, idempotency_key=key, form=form, files=files)
        self._expect(reply, expected, f"step {self.number} ({title})")
        if on_reply:
            on_reply(reply)
        voucher = self._voucher()
        if check:
            check(reply, voucher)
        ref_id = ref(reply) if callable(ref) else ref
        entries = [entry for entry in self.ledger.read_new() if ref_id in entry["refs"].values()]
        if entries and no_entry is not None:
            raise DemoFailure(f"step {self.number} ({title}) should change nothing ({no_entry}), "
                              f"but the ledger gained entry seq {entries[0]['seq']} ({entries[0]['kind']})")
        wrong = self.ledger.disagreements(voucher) if voucher is not None and not self.ledger.problem else []
        if wrong:
            raise DemoFailure(f"step {self.number} ({title}): the signed ledger disagrees with the voucher's "
                              "balances: " + "; ".join(wrong))
        self.seqs.extend(entry["seq"] for entry in entries)
        text = outcome(reply) if callable(outcome) else (outcome or "")
        self.echo(step_line(self.number, title, reply, text))
        for line in balances_lines(voucher) + ledger_lines(entries, no_entry=no_entry, ledger=self.ledger):
            self.echo(line)
        self.echo("")
        return reply

    # -- the story

    def run(self) -> None:
        t = self.tokens
        enterprise = self._get(f"{API}/enterprises/{ENTERPRISE_ID}", t.sme, "read the enterprise")
        provider = self._get(f"{API}/providers/{PROVIDER_ID}", t.provider, "read the provider")
        item = self._get(f"{API}/catalog/{CATALOG_CODE}", t.sme, "read the catalogue item")
        second_item = self._get(f"{API}/catalog/{SECOND_CATALOG_CODE}", t.sme, "read the catalogue item")
        policy = self._get(f"{API}/regions/{HOME_REGION}", t.sme, "read the issuing region")["policy"]
        if policy is None:
            raise DemoFailure(f"region {HOME_REGION} has no policy in effect today")
        ratio_bp = min(item["max_subsidy_ratio_bp"], policy["subsidy_ratio_bp"])
        second_ratio_bp = min(second_item["max_subsidy_ratio_bp"], policy["subsidy_ratio_bp"])
        reserve_fen, claim_fen = max_subsidy_fen(RESERVE_FEE_FEN, ratio_bp), max_subsidy_fen(CLAIM_FEE_FEN, ratio_bp)
        over_fen = max_subsidy_fen(OVER_FEE_FEN, ratio_bp) + OVER_BY_FEN
        second_fen = max_subsidy_fen(SECOND_FEE_FEN, second_ratio_bp)
        self.echo(f"  enterprise  {ENTERPRISE_ID:<11} {enterprise['region']:<3} {enterprise['name']}")
        self.echo(f"  provider    {PROVIDER_ID:<11} {provider['region']:<3} {provider['name']}")
        self.echo(f"  service     {CATALOG_CODE:<11} {item['max_subsidy_ratio_bp'] / 100:g}% "
                  f"{item['name_zh']} ({item['name_en']}); {ratio_bp / 100:g}% in effect for {HOME_REGION}")
        self.echo("")

        application = self.step(
            f"SME applies to {HOME_REGION} for {cny(FACE_FEN)} CNY", "POST", f"{API}/applications", t.sme,
            expected=201, key=self._key("apply"),
            body={"amount_fen": FACE_FEN, "purpose": "检验检测: 智能装备整机可靠性测试 (demo)"},
            ref=lambda r: r.json["id"], outcome=lambda r: f"application {r.json['id']} {r.json['status']}").json

        def issued(reply):
            self.voucher_id = reply.json["voucher_id"]
        self.step(
            f"{HOME_REGION} officer approves: voucher issued", "POST",
            f"{API}/applications/{application['id']}/approve", t.officer, expected=200, body={},
            key=self._key("approve-application"), on_reply=issued, ref=lambda r: r.json["voucher_id"],
            outcome=lambda r: f"voucher {r.json['voucher']['code']} ({r.json['voucher_id']})")
        voucher_id = self.voucher_id

        reservation = {"voucher_id": voucher_id, "provider_id": PROVIDER_ID, "catalog_code": CATALOG_CODE,
                       "service_fee_fen": RESERVE_FEE_FEN, "amount_fen": reserve_fen}
        reserve_key = self._key("reserve")
        first = self.step(
            f"SME reserves {cny(reserve_fen)} of a {cny(RESERVE_FEE_FEN)} CNY service at {PROVIDER_ID}",
            "POST", f"{API}/redemptions", t.sme, expected=201, body=reservation, key=reserve_key,
            ref=lambda r: r.json["id"], outcome=lambda r: f"redemption {r.json['id']} {r.json['status']}").json
        redemption_id = first["id"]
        held_after_first = self._voucher()["held_fen"]

        def same_redemption(reply, voucher):
            if reply.json.get("id") != redemption_id:
                raise DemoFailure(f"the replay returned redemption {reply.json.get('id')}, not {redemption_id}")
            if voucher["held_fen"] != held_after_first:
                raise DemoFailure(f"the replay placed a second hold: held {voucher['held_fen']} fen, "
                                  f"was {held_after_first} fen")
        self.step(
            "SME replays it with the same Idempotency-Key", "POST", f"{API}/redemptions", t.sme, expected=201,
            body=reservation, key=reserve_key, ref=redemption_id, check=same_redemption,
            no_entry="a replay repeats the first answer and changes nothing",
            outcome=lambda r: (f"same redemption {r.json['id']}, Idempotent-Replayed: "
                               f"{r.headers.get('Idempotent-Replayed', 'no')}; no second hold"))

        self.step(
            f"SME tries {cny(over_fen)} of a {cny(OVER_FEE_FEN)} CNY service ({over_fen * 100 / OVER_FEE_FEN:g}%)",
            "POST", f"{API}/redemptions", t.sme, expected=409, key=self._key("over-ratio"),
            body={**reservation, "service_fee_fen": OVER_FEE_FEN, "amount_fen": over_fen},
            ref=voucher_id, no_entry="a refused request changes nothing", outcome=lambda r: f"refused: {r.problem}")

        for kind in ("contract", "invoice"):
            # A claim needs its evidence (DESIGN §9): PDFs, stored by their SHA-256.
            self.step(
                f"Provider uploads the {kind} (PDF)", "POST", f"{API}/redemptions/{redemption_id}/documents",
                t.provider, expected=201, key=self._key(f"upload-{kind}"), form={"kind": kind},
                files={"file": (f"{kind}.pdf", demo_pdf(f"{kind} for {redemption_id}"))}, ref=redemption_id,
                outcome=lambda r: f"{r.json['kind']} sha256 {r.json['sha256'][:16]}…, {r.json['size_bytes']} bytes")

        self.step(
            f"Provider claims {cny(claim_fen)} of a {cny(CLAIM_FEE_FEN)} CNY invoice", "POST",
            f"{API}/redemptions/{redemption_id}/claim", t.provider, expected=200, key=self._key("claim"),
            body={"invoice_no": f"SH-INV-{self.run_id[:8].upper()}", "service_fee_fen": CLAIM_FEE_FEN,
                  "amount_fen": claim_fen},
            ref=redemption_id,
            outcome=lambda r: f"{r.json['status']}; {cny(reserve_fen - claim_fen)} CNY of the hold released")

        self.step("SME confirms the service was delivered", "POST", f"{API}/redemptions/{redemption_id}/confirm",
                  t.sme, expected=200, key=self._key("confirm"), ref=redemption_id,
                  outcome=lambda r: r.json["status"])

        self.step(f"{PROVIDER_REGION} officer tries to approve (not the issuing region)", "POST",
                  f"{API}/redemptions/{redemption_id}/approve", t.sh_officer, expected=403,
                  key=self._key("approve-sh"), ref=redemption_id, no_entry="a refused request changes nothing",
                  outcome=lambda r: f"refused: {r.problem}")

        self.step(f"{HOME_REGION} officer approves: redeemed", "POST", f"{API}/redemptions/{redemption_id}/approve",
                  t.officer, expected=200, key=self._key("approve-redemption"), ref=redemption_id,
                  outcome=lambda r: (f"{r.json['status']}: {cny(r.json['amount_fen'])} CNY payable by "
                                     f"{r.json['region']} to {r.json['provider_id']}"))

        second = self.step(
            f"SME reserves {cny(second_fen)} of a {cny(SECOND_FEE_FEN)} CNY instrument booking", "POST",
            f"{API}/redemptions", t.sme, expected=201, key=self._key("reserve-2"),
            body={**reservation, "catalog_code": SECOND_CATALOG_CODE, "service_fee_fen": SECOND_FEE_FEN,
                  "amount_fen": second_fen},
            ref=lambda r: r.json["id"], outcome=lambda r: f"redemption {r.json['id']} {r.json['status']}").json

        self.step("SME cancels it: the hold is released", "POST", f"{API}/redemptions/{second['id']}/cancel",
                  t.sme, expected=200, key=self._key("cancel"), body={"reason": "instrument booking moved"},
                  ref=second["id"], outcome=lambda r: r.json["status"])

        self._summary(redemption_id, second["id"], provider)

    def _get(self, path: str, token: str, title: str) -> dict:
        reply = send(self.client, "GET", path, token)
        self._expect(reply, 200, f"GET {path} ({title})")
        return reply.json

    def _summary(self, redemption_id: str, cancelled_id: str, provider: dict) -> None:
        voucher = self._voucher()
        first = self._get(f"{API}/redemptions/{redemption_id}", self.tokens.sme, "read the redemption")
        second = self._get(f"{API}/redemptions/{cancelled_id}", self.tokens.sme, "read the redemption")
        f, a, h, r = (voucher[f"{n}_fen"] for n in ("face", "available", "held", "redeemed"))
        self.echo("Result")
        self.echo(f"  redemption {first['id']}  {first['status']:<9}  {cny(first['amount_fen'])} CNY payable by "
                  f"{first['region']} to {first['provider_id']} {provider['name']}")
        self.echo(f"  redemption {second['id']}  {second['status']:<9}  hold of {cny(second['amount_fen'])} CNY "
                  "released")
        self.echo(f"  voucher    {voucher['code']}  {voucher['status']}: face {cny(f)} = available {cny(a)} + "
                  f"held {cny(h)} + redeemed {cny(r)} CNY ({f} = {a} + {h} + {r} fen)")
        if self.seqs:
            self.echo(f"  ledger     {len(self.seqs)} signed entries written by this run, "
                      f"seq {min(self.seqs)}–{max(self.seqs)}")
        if a + h + r != f:
            raise DemoFailure(f"the voucher's balances do not add up: {a} + {h} + {r} != {f} fen")
        self._check_ledger_agrees(voucher)

    def _check_ledger_agrees(self, voucher: dict) -> None:
        """Replaying the whole signed ledger must give the voucher's available and held balances."""
        if self.ledger.problem:
            self.echo(f"  check      skipped: {self.ledger.problem}")
            return
        self.ledger.read_new()
        wrong = self.ledger.disagreements(voucher)
        if wrong:
            raise DemoFailure("the signed ledger disagrees with the voucher's balances: " + "; ".join(wrong))
        self.echo(f"  check      replaying the ledger gives {self.ledger.balance(voucher_account(voucher['id']))} "
                  f"fen available and {self.ledger.balance(held_account(voucher['id']))} fen held: "
                  "it agrees with the voucher")
