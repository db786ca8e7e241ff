"""`vouchers demo`: drive the whole lifecycle through the HTTP API of a running server.

A Kunshan enterprise spends a Kunshan voucher at a Shanghai provider (通用通兑):
apply → approve (issue) → reserve (with an Idempotency-Key, replayed) → an
over-ratio reservation refused → claim (lower amount) → confirm → the wrong
region's officer refused → approve (redeemed) → a second reservation cancelled.

The demo is a client like any other: everything it shows comes through the API
(cli/client.py), the ledger too, which it reads as an auditor and replays with
the ledger's own replay, as an auditor's tools would. The one thing it does in
this machine's database is an administrator's bootstrap: minting its
short-lived tokens, unless they are passed in.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from voucher_service.cli.client import API_PREFIX as API
from voucher_service.cli.client import ApiClient, Reply, TransportError
from voucher_service.db import get_engine
from voucher_service.http import auth
from voucher_service.ledger import merkle
from voucher_service.ledger.accounts import held_account, voucher_account
from voucher_service.ledger.canonical import canonical_bytes
from voucher_service.ledger.verify import VerificationError
from voucher_service.ledger.verify.entries import posting_tuples
from voucher_service.ledger.verify.replay import apply_postings

HTTP_TIMEOUT_S = 30

ENTERPRISE_ID = "ent-ks-003"   # a Kunshan enterprise with no related providers
HOME_REGION = "KS"             # issues (and pays for) the voucher
PROVIDER_ID = "prv-sh-001"     # a Shanghai provider accredited for testing and instruments
PROVIDER_REGION = "SH"
CATALOG_CODE = "TS-01"         # product testing and inspection, at most 50%
SECOND_CATALOG_CODE = "IN-01"  # shared use of large instruments, at most 50%

FACE_FEN = 2_000_000
RESERVE_FEE_FEN, RESERVE_FEN = 1_200_000, 600_000
OVER_FEE_FEN, OVER_FEN = 1_000_000, 600_000
CLAIM_FEE_FEN, CLAIM_FEN = 1_000_000, 500_000
SECOND_FEE_FEN, SECOND_FEN = 400_000, 200_000

TOKEN_TTL_DAYS = 1
ENTRIES_PAGE = 1000  # the API's largest page
STEP_WIDTH = 64
COLUMN = 14


class DemoFailure(click.ClickException):
    """Ends the demo with exit status 1 and a message on standard error."""


def send(client: ApiClient, method: str, path: str, token: str | None = None, body: dict | None = None,
          **options) -> Reply:
    try:
        return client.request(method, path, token, body, **options)
    except TransportError as exc:
        raise DemoFailure(
            f"cannot reach the server at {client.base_url} ({method} {path}: {exc.reason}).\n"
            "Is it running? Start it with `make run`, or pass its address with --url.") from None


# --------------------------------------------------------------------------- ledger


class Ledger:
    """The ledger as the API shows it to an auditor, read forward from seq 0.

    Every entry read is replayed at once, so `balances` are always those of
    the whole ledger so far: a partial replay would take the budgets that
    fund vouchers below zero, which the ledger's replay rightly refuses.
    """

    def __init__(self, client: ApiClient, token: str | None, expect):
        self.client, self.token, self.expect = client, token, expect
        self.next_seq = 0
        self.balances: dict[str, int] = {}
        self.problem = None if token else "no auditor token to read the ledger with: pass --auditor-token"

    def read_new(self) -> list[dict]:
        """The entries written since the last call (all of them, the first time)."""
        if self.problem:
            return []
        rows = []
        while True:
            reply = send(self.client, "GET", f"{API}/ledger/entries", self.token,
                          query={"start": self.next_seq, "limit": ENTRIES_PAGE})
            self.expect(reply, 200, f"reading the ledger from seq {self.next_seq}")
            items = reply.json["items"]
            for entry in items:
                self._replay(entry)
            rows.extend(items)
            if not items or reply.json.get("next_start") is None:
                return rows

    def _replay(self, entry: dict) -> None:
        seq = entry["seq"]
        if seq != self.next_seq:
            # Entries the token may not see would make the replay wrong, not just short.
            raise DemoFailure(f"seq {self.next_seq} is missing from the ledger read through the API (the next "
                              f"entry is seq {seq}): the token reading it must be an auditor's")
        try:
            apply_postings(self.balances, posting_tuples(entry), seq)
        except VerificationError as exc:
            raise DemoFailure(f"the signed ledger does not replay: {exc}") from None
        self.next_seq = seq + 1

    def disagreements(self, voucher: dict) -> list[str]:
        """How the replayed balances of the voucher's accounts differ from the voucher's own."""
        return [f"account {account} is {self.balance(account)} fen, {column} is {voucher[column]} fen"
                for account, column in ((voucher_account(voucher["id"]), "available_fen"),
                                        (held_account(voucher["id"]), "held_fen"))
                if self.balance(account) != voucher[column]]

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)  # the replay forgets accounts back at zero


# --------------------------------------------------------------------------- output


def cny(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def step_line(number: int, title: str, reply: Reply, outcome: str) -> str:
    status = f"{reply.status} {phrase(reply.status)}".strip()
    return f"{number:>2}. {title:<{STEP_WIDTH}} {status:<16} {outcome}"


def balances_lines(voucher: dict | None) -> list[str]:
    if voucher is None:
        return ["      voucher    not issued yet"]
    names = ("face", "available", "held", "redeemed")
    values = [voucher[f"{name}_fen"] for name in names]
    return [
        f"      voucher    {voucher['code']}  {voucher['status']}",
        "      balances   " + "     " + "".join(f"{name:>{COLUMN}}" for name in names),
        "                 " + "CNY  " + "".join(f"{cny(value):>{COLUMN}}" for value in values),
        "                 " + "fen  " + "".join(f"{value:>{COLUMN}}" for value in values),
    ]


def ledger_lines(entries: list[dict], *, no_entry: str | None, ledger: Ledger) -> list[str]:
    """`no_entry` says why the step writes no entry; None when it must write one."""
    if ledger.problem:
        return [f"      ledger     ({ledger.problem})"]
    if not entries:
        if no_entry is None:
            return ["      ledger     no entry found, though this step should have written one"]
        return [f"      ledger     no entry: {no_entry}"]
    lines = []
    for entry in entries:
        # The API serves entries, not leaf hashes: hashed here as a verifier hashes them (RFC 9162).
        leaf = merkle.leaf_hash(canonical_bytes(entry)).hex()[:16]
        lines.append(f"      ledger     seq {entry['seq']:<6} {entry['kind']:<24} region {entry['region']:<4} "
                     f"leaf {leaf}")
        if not entry["postings"]:
            lines.append("                 (no postings)")
            continue
        for posting in entry["postings"]:
            lines.append(f"{'':17}{posting['amount']:>10} fen  {posting['source']} → {posting['destination']}")
    return lines


# --------------------------------------------------------------------------- the demo


ROLE_TOKENS = (("sme", {"enterprise_id": ENTERPRISE_ID}), ("officer", {"region": HOME_REGION}),
               ("provider", {"provider_id": PROVIDER_ID}), ("officer", {"region": PROVIDER_REGION}))
AUDITOR_TOKEN = ("auditor", {})
TOKEN_OPTIONS = "--sme-token, --officer-token, --provider-token, --sh-officer-token"


@dataclass
class Tokens:
    sme: str
    officer: str
    provider: str
    sh_officer: str
    auditor: str | None  # reads the ledger; without one the demo shows no entries
    minted_ids: list = field(default_factory=list)


def mint_tokens(specs) -> tuple[list[str], list[str]]:
    """Tokens for (role, binding) pairs, and their ids for revoking them."""
    minted, ids = [], []
    try:
        with Session(get_engine()) as session:
            for role, binding in specs:
                token, row = auth.create_token(session, role=role, ttl_days=TOKEN_TTL_DAYS, **binding)
                minted.append(token)
                ids.append(row.id)
            session.commit()
    except SQLAlchemyError as exc:
        raise DemoFailure(
            f"cannot mint the demo's tokens in {current_app.config['DATABASE_URL']} ({type(exc).__name__}).\n"
            "Run `vouchers init` with the server's DATABASE_URL first, or pass the four tokens with "
            f"{TOKEN_OPTIONS} (and --auditor-token to see the ledger).") from None
    return minted, ids


def resolve_tokens(given: list[str | None], auditor: str | None) -> tuple[Tokens, str]:
    """The four role tokens given, or all of them minted, with an auditor's unless one is given
    (whoever passes the role tokens may have no database to mint in); and what was done."""
    if any(given):
        return Tokens(*given, auditor=auditor), "as given" if auditor else "as given, no auditor's: no ledger"
    minted, ids = mint_tokens(ROLE_TOKENS if auditor else ROLE_TOKENS + (AUDITOR_TOKEN,))
    tokens = Tokens(*minted[:len(ROLE_TOKENS)], auditor=auditor or minted[-1], minted_ids=ids)
    return tokens, (f"minted for this run (sme, KS officer, SH provider, SH officer{'' if auditor else ', auditor'}), "
                    f"revoked at the end{'; the auditor token as given' if auditor else ''}")


def revoke_tokens(token_ids: list[str]) -> None:
    try:
        with Session(get_engine()) as session:
            for token_id in token_ids:
                auth.revoke_token(session, token_id)
            session.commit()
    except SQLAlchemyError:
        click.echo("note: the demo's tokens could not be revoked; they expire within a day", err=True)


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
             on_reply=None, check=None) -> Reply:
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
        reply = send(self.client, method, path, token, body, idempotency_key=key)
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
        self.echo(f"  enterprise  {ENTERPRISE_ID:<11} {enterprise['region']:<3} {enterprise['name']}")
        self.echo(f"  provider    {PROVIDER_ID:<11} {provider['region']:<3} {provider['name']}")
        self.echo(f"  service     {CATALOG_CODE:<11} {item['max_subsidy_ratio_bp'] / 100:g}% "
                  f"{item['name_zh']} ({item['name_en']})")
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
                       "service_fee_fen": RESERVE_FEE_FEN, "amount_fen": RESERVE_FEN}
        reserve_key = self._key("reserve")
        first = self.step(
            f"SME reserves {cny(RESERVE_FEN)} of a {cny(RESERVE_FEE_FEN)} CNY service at {PROVIDER_ID}",
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
            f"SME tries {cny(OVER_FEN)} of a {cny(OVER_FEE_FEN)} CNY service (60%)", "POST", f"{API}/redemptions",
            t.sme, expected=409, key=self._key("over-ratio"),
            body={**reservation, "service_fee_fen": OVER_FEE_FEN, "amount_fen": OVER_FEN},
            ref=voucher_id, no_entry="a refused request changes nothing", outcome=lambda r: f"refused: {r.problem}")

        self.step(
            f"Provider claims {cny(CLAIM_FEN)} of a {cny(CLAIM_FEE_FEN)} CNY invoice", "POST",
            f"{API}/redemptions/{redemption_id}/claim", t.provider, expected=200, key=self._key("claim"),
            body={"invoice_no": f"SH-INV-{self.run_id[:8].upper()}", "service_fee_fen": CLAIM_FEE_FEN,
                  "amount_fen": CLAIM_FEN},
            ref=redemption_id,
            outcome=lambda r: f"{r.json['status']}; {cny(RESERVE_FEN - CLAIM_FEN)} CNY of the hold released")

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
            f"SME reserves {cny(SECOND_FEN)} of a {cny(SECOND_FEE_FEN)} CNY instrument booking", "POST",
            f"{API}/redemptions", t.sme, expected=201, key=self._key("reserve-2"),
            body={**reservation, "catalog_code": SECOND_CATALOG_CODE, "service_fee_fen": SECOND_FEE_FEN,
                  "amount_fen": SECOND_FEN},
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


@click.command("demo")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="base URL of the running server")
@click.option("--sme-token", envvar="VOUCHERS_DEMO_SME_TOKEN",
              help=f"token of an sme bound to {ENTERPRISE_ID} (env VOUCHERS_DEMO_SME_TOKEN)")
@click.option("--officer-token", envvar="VOUCHERS_DEMO_OFFICER_TOKEN",
              help=f"token of an officer of {HOME_REGION} (env VOUCHERS_DEMO_OFFICER_TOKEN)")
@click.option("--provider-token", envvar="VOUCHERS_DEMO_PROVIDER_TOKEN",
              help=f"token of the provider {PROVIDER_ID} (env VOUCHERS_DEMO_PROVIDER_TOKEN)")
@click.option("--sh-officer-token", envvar="VOUCHERS_DEMO_SH_OFFICER_TOKEN",
              help=f"token of an officer of {PROVIDER_REGION} (env VOUCHERS_DEMO_SH_OFFICER_TOKEN)")
@click.option("--auditor-token", envvar="VOUCHERS_DEMO_AUDITOR_TOKEN",
              help="token of an auditor, to read the ledger entries (env VOUCHERS_DEMO_AUDITOR_TOKEN)")
@with_appcontext
def demo_command(url, sme_token, officer_token, provider_token, sh_officer_token, auditor_token):
    """Drive the whole voucher lifecycle through the API of a running server and print each step.

    A Kunshan enterprise spends a Kunshan voucher at a Shanghai provider. Unless
    all four role tokens are given, the demo mints short-lived tokens in this
    machine's database (DATABASE_URL), an auditor's too, and revokes them at
    the end. Each step's ledger entries are read through the API with the
    auditor's token; given the four tokens but no --auditor-token, the demo
    shows no entries.
    """
    try:
        client = ApiClient(url, timeout_s=HTTP_TIMEOUT_S)
    except ValueError:
        raise click.BadParameter("use http://host:port or https://host", param_hint="--url") from None
    given = [sme_token, officer_token, provider_token, sh_officer_token]
    if any(given) and not all(given):
        raise click.UsageError(f"pass all four tokens ({TOKEN_OPTIONS}) or none, and the demo mints its own")
    ready = send(client, "GET", "/readyz")
    if ready.status != 200:
        raise DemoFailure(f"the server at {client.base_url} is not ready ({ready.status}): {ready.problem}")

    tokens, told = resolve_tokens(given, auditor_token)
    click.echo(f"Innovation voucher demo (科技创新券, 通用通兑) against {client.base_url}")
    click.echo(f"  tokens      {told}")
    try:
        Demo(client, tokens).run()
    finally:
        if tokens.minted_ids:
            revoke_tokens(tokens.minted_ids)
