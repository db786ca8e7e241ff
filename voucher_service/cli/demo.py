"""`vouchers demo`: drive the whole lifecycle through the HTTP API of a running server.

A Kunshan enterprise spends a Kunshan voucher at a Shanghai provider (通用通兑):
apply → approve (issue) → reserve (with an Idempotency-Key, replayed) → an
over-ratio reservation refused → claim (lower amount) → confirm → the wrong
region's officer refused → approve (redeemed) → a second reservation cancelled.

HTTP goes through the standard library only (urllib.request): the demo is a
client like any other. The ledger entry each step produced is read from this
machine's database (the API does not return entries in its responses), and the
demo's access tokens are minted there too unless they are passed in.
"""
from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from voucher_service.db import get_engine, read_only
from voucher_service.http import auth
from voucher_service.ledger.accounts import held_account, voucher_account
from voucher_service.models import LedgerEntry, LedgerRef

API = "/api/v1"
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
STEP_WIDTH = 64
COLUMN = 14


class DemoFailure(click.ClickException):
    """Ends the demo with exit status 1 and a message on standard error."""


# --------------------------------------------------------------------------- HTTP


@dataclass
class Reply:
    status: int
    headers: object  # http.client.HTTPMessage: case-insensitive get()
    body: object

    @property
    def problem(self) -> str:
        """The problem detail (RFC 9457) of an error reply, on one line."""
        if not isinstance(self.body, dict):
            return str(self.body)[:300]
        parts = [str(self.body.get("detail") or self.body.get("title") or "")]
        if self.body.get("type") not in (None, "about:blank"):
            parts.append(f"[{self.body['type']}]")
        return " ".join(p for p in parts if p)


class Http:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None,
             idempotency_key: str | None = None) -> Reply:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return self._reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return self._reply(error.code, error.headers, error.read())
        except (urllib.error.URLError, ConnectionError, socket.timeout, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DemoFailure(
                f"cannot reach the server at {self.base_url} ({method} {path}: {reason}).\n"
                "Is it running? Start it with `make run`, or pass its address with --url.") from None

    @staticmethod
    def _reply(status, headers, raw: bytes) -> Reply:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return Reply(status=status, headers=headers, body=body)


# --------------------------------------------------------------------------- ledger


@dataclass
class LedgerRow:
    seq: int
    kind: str
    region: str
    postings: list
    leaf: str


class LedgerView:
    """Newest ledger rows of this machine's database, by the id they concern."""

    def __init__(self):
        self.engine = get_engine()
        self.problem: str | None = None

    def _session(self) -> Session:
        return Session(self.engine)

    def head(self) -> int:
        """The highest seq now (-1 for an empty ledger), or -1 when the ledger is not readable."""
        if self.problem:
            return -1
        try:
            with read_only(), self._session() as session:
                top = session.exec(select(func.max(LedgerEntry.seq))).one()
        except SQLAlchemyError as exc:
            self.problem = f"the ledger is not readable from this machine's database ({type(exc).__name__})"
            return -1
        return -1 if top is None else int(top)

    def since(self, after_seq: int, ref: str | None) -> list[LedgerRow]:
        if self.problem or not ref:
            return []
        query = (select(LedgerEntry).join(LedgerRef, LedgerRef.seq == LedgerEntry.seq)
                 .where(LedgerRef.ref == ref, LedgerEntry.seq > after_seq)
                 .order_by(LedgerEntry.seq.desc()).limit(20))
        try:
            with read_only(), self._session() as session:
                rows = session.exec(query).all()
                found = [LedgerRow(seq=row.seq, kind=row.kind, region=row.region,
                                   postings=json.loads(row.canonical).get("postings", []),
                                   leaf=bytes(row.leaf_hash).hex()[:16]) for row in rows]
        except SQLAlchemyError as exc:
            self.problem = f"the ledger is not readable from this machine's database ({type(exc).__name__})"
            return []
        return list(reversed(found))

    def replay(self, ref: str, accounts: tuple[str, ...]) -> dict[str, int] | None:
        """Balances of `accounts` from the postings of every signed entry that concerns `ref`."""
        if self.problem:
            return None
        query = (select(LedgerEntry.canonical).join(LedgerRef, LedgerRef.seq == LedgerEntry.seq)
                 .where(LedgerRef.ref == ref).order_by(LedgerEntry.seq))
        balances = dict.fromkeys(accounts, 0)
        try:
            with read_only(), self._session() as session:
                for canonical in session.exec(query):
                    for posting in json.loads(canonical).get("postings", []):
                        if posting["source"] in balances:
                            balances[posting["source"]] -= posting["amount"]
                        if posting["destination"] in balances:
                            balances[posting["destination"]] += posting["amount"]
        except SQLAlchemyError as exc:
            self.problem = f"the ledger is not readable from this machine's database ({type(exc).__name__})"
            return None
        return balances


# --------------------------------------------------------------------------- output


def cny(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _step_line(number: int, title: str, reply: Reply, outcome: str) -> str:
    status = f"{reply.status} {_phrase(reply.status)}".strip()
    return f"{number:>2}. {title:<{STEP_WIDTH}} {status:<16} {outcome}"


def _balances_lines(voucher: dict | None) -> list[str]:
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


def _ledger_lines(rows: list[LedgerRow], *, no_entry: str | None, ledger: LedgerView) -> list[str]:
    """`no_entry` says why the step writes no entry; None when it must write one."""
    if ledger.problem:
        return [f"      ledger     ({ledger.problem})"]
    if not rows:
        if no_entry is None:
            return ["      ledger     no entry found in this machine's database (is the server using another one?)"]
        return [f"      ledger     no entry: {no_entry}"]
    lines = []
    for row in rows:
        lines.append(f"      ledger     seq {row.seq:<6} {row.kind:<24} region {row.region:<4} leaf {row.leaf}")
        if not row.postings:
            lines.append("                 (no postings)")
            continue
        for posting in row.postings:
            lines.append(f"{'':17}{posting['amount']:>10} fen  {posting['source']} → {posting['destination']}")
    return lines


# --------------------------------------------------------------------------- the demo


@dataclass
class Tokens:
    sme: str
    officer: str
    provider: str
    sh_officer: str
    minted_ids: list = field(default_factory=list)


def _mint_tokens() -> Tokens:
    specs = (("sme", {"enterprise_id": ENTERPRISE_ID}), ("officer", {"region": HOME_REGION}),
             ("provider", {"provider_id": PROVIDER_ID}), ("officer", {"region": PROVIDER_REGION}))
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
            "--sme-token, --officer-token, --provider-token and --sh-officer-token.") from None
    return Tokens(*minted, minted_ids=ids)


def _revoke_tokens(token_ids: list[str]) -> None:
    try:
        with Session(get_engine()) as session:
            for token_id in token_ids:
                auth.revoke_token(session, token_id)
            session.commit()
    except SQLAlchemyError:
        click.echo("note: the demo's tokens could not be revoked; they expire within a day", err=True)


class Demo:
    def __init__(self, http: Http, tokens: Tokens, ledger: LedgerView, echo=click.echo):
        self.http = http
        self.tokens = tokens
        self.ledger = ledger
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
            if not isinstance(reply.body, dict):
                raise DemoFailure(f"{where}: HTTP {reply.status} without a JSON object: {str(reply.body)[:200]}")
            return
        hint = ""
        if reply.status == 401 and self.tokens.minted_ids:
            hint = ("\nThe server rejected a token minted in this machine's database "
                    f"({current_app.config['DATABASE_URL']}): is the server using another database? "
                    "Run the demo with the server's DATABASE_URL, or pass tokens with --sme-token etc.")
        elif reply.status == 401:
            hint = "\nCheck the tokens given with --sme-token, --officer-token, --provider-token, --sh-officer-token."
        elif reply.status == 503:
            hint = "\nThe server is not ready: run `vouchers init` with its configuration."
        raise DemoFailure(f"{where}: expected HTTP {expected}, got {reply.status} {_phrase(reply.status)}: "
                          f"{reply.problem}{hint}")

    def _voucher(self) -> dict | None:
        if self.voucher_id is None:
            return None
        reply = self.http.call("GET", f"{API}/vouchers/{self.voucher_id}", self.tokens.sme)
        self._expect(reply, 200, f"step {self.number}, reading the voucher's balances")
        return reply.body

    def step(self, title: str, method: str, path: str, token: str, *, expected: int, body: dict | None = None,
             key: str | None = None, ref=None, outcome=None, no_entry: str | None = None,
             on_reply=None, check=None) -> Reply:
        """One request: print its line, the voucher's balances and the ledger entry it produced.

        `ref` (the id the entry concerns) and `outcome` (the text after the status) may be
        callables of the reply; `on_reply(reply)` runs before the balances are read;
        `check(reply, voucher)` may raise DemoFailure; `no_entry` says why the step writes no
        ledger entry (None: it must write one).
        """
        self.number += 1
        before = self.ledger.head()
        reply = self.http.call(method, path, token, body, idempotency_key=key)
        self._expect(reply, expected, f"step {self.number} ({title})")
        if on_reply:
            on_reply(reply)
        voucher = self._voucher()
        if check:
            check(reply, voucher)
        ref_id = ref(reply) if callable(ref) else ref
        rows = self.ledger.since(before, ref_id)
        if rows and no_entry is not None:
            raise DemoFailure(f"step {self.number} ({title}) should change nothing ({no_entry}), "
                              f"but the ledger gained entry seq {rows[0].seq} ({rows[0].kind})")
        self.seqs.extend(row.seq for row in rows)
        text = outcome(reply) if callable(outcome) else (outcome or "")
        self.echo(_step_line(self.number, title, reply, text))
        for line in _balances_lines(voucher) + _ledger_lines(rows, no_entry=no_entry, ledger=self.ledger):
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
            ref=lambda r: r.body["id"], outcome=lambda r: f"application {r.body['id']} {r.body['status']}").body

        def issued(reply):
            self.voucher_id = reply.body["voucher_id"]
        self.step(
            f"{HOME_REGION} officer approves: voucher issued", "POST",
            f"{API}/applications/{application['id']}/approve", t.officer, expected=200, body={},
            key=self._key("approve-application"), on_reply=issued, ref=lambda r: r.body["voucher_id"],
            outcome=lambda r: f"voucher {r.body['voucher']['code']} ({r.body['voucher_id']})")
        voucher_id = self.voucher_id

        reservation = {"voucher_id": voucher_id, "provider_id": PROVIDER_ID, "catalog_code": CATALOG_CODE,
                       "service_fee_fen": RESERVE_FEE_FEN, "amount_fen": RESERVE_FEN}
        reserve_key = self._key("reserve")
        first = self.step(
            f"SME reserves {cny(RESERVE_FEN)} of a {cny(RESERVE_FEE_FEN)} CNY service at {PROVIDER_ID}",
            "POST", f"{API}/redemptions", t.sme, expected=201, body=reservation, key=reserve_key,
            ref=lambda r: r.body["id"], outcome=lambda r: f"redemption {r.body['id']} {r.body['status']}").body
        redemption_id = first["id"]
        held_after_first = self._voucher()["held_fen"]

        def same_redemption(reply, voucher):
            if reply.body.get("id") != redemption_id:
                raise DemoFailure(f"the replay returned redemption {reply.body.get('id')}, not {redemption_id}")
            if voucher["held_fen"] != held_after_first:
                raise DemoFailure(f"the replay placed a second hold: held {voucher['held_fen']} fen, "
                                  f"was {held_after_first} fen")
        self.step(
            "SME replays it with the same Idempotency-Key", "POST", f"{API}/redemptions", t.sme, expected=201,
            body=reservation, key=reserve_key, ref=redemption_id, check=same_redemption,
            no_entry="a replay repeats the first answer and changes nothing",
            outcome=lambda r: (f"same redemption {r.body['id']}, Idempotent-Replayed: "
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
            outcome=lambda r: f"{r.body['status']}; {cny(RESERVE_FEN - CLAIM_FEN)} CNY of the hold released")

        self.step("SME confirms the service was delivered", "POST", f"{API}/redemptions/{redemption_id}/confirm",
                  t.sme, expected=200, key=self._key("confirm"), ref=redemption_id,
                  outcome=lambda r: r.body["status"])

        self.step(f"{PROVIDER_REGION} officer tries to approve (not the issuing region)", "POST",
                  f"{API}/redemptions/{redemption_id}/approve", t.sh_officer, expected=403,
                  key=self._key("approve-sh"), ref=redemption_id, no_entry="a refused request changes nothing",
                  outcome=lambda r: f"refused: {r.problem}")

        self.step(f"{HOME_REGION} officer approves: redeemed", "POST", f"{API}/redemptions/{redemption_id}/approve",
                  t.officer, expected=200, key=self._key("approve-redemption"), ref=redemption_id,
                  outcome=lambda r: (f"{r.body['status']}: {cny(r.body['amount_fen'])} CNY payable by "
                                     f"{r.body['region']} to {r.body['provider_id']}"))

        second = self.step(
            f"SME reserves {cny(SECOND_FEN)} of a {cny(SECOND_FEE_FEN)} CNY instrument booking", "POST",
            f"{API}/redemptions", t.sme, expected=201, key=self._key("reserve-2"),
            body={**reservation, "catalog_code": SECOND_CATALOG_CODE, "service_fee_fen": SECOND_FEE_FEN,
                  "amount_fen": SECOND_FEN},
            ref=lambda r: r.body["id"], outcome=lambda r: f"redemption {r.body['id']} {r.body['status']}").body

        self.step("SME cancels it: the hold is released", "POST", f"{API}/redemptions/{second['id']}/cancel",
                  t.sme, expected=200, key=self._key("cancel"), body={"reason": "instrument booking moved"},
                  ref=second["id"], outcome=lambda r: r.body["status"])

        self._summary(redemption_id, second["id"], provider)

    def _get(self, path: str, token: str, title: str) -> dict:
        reply = self.http.call("GET", path, token)
        self._expect(reply, 200, f"GET {path} ({title})")
        return reply.body

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
        """Replaying the voucher's signed entries must give its available and held balances."""
        available, held = voucher_account(voucher['id']), held_account(voucher['id'])
        replayed = self.ledger.replay(voucher["id"], (available, held))
        if replayed is None:
            self.echo(f"  check      skipped: {self.ledger.problem}")
            return
        wrong = [f"account {account} is {replayed[account]} fen, {column} is {voucher[column]} fen"
                 for account, column in ((available, "available_fen"), (held, "held_fen"))
                 if replayed[account] != voucher[column]]
        if wrong:
            raise DemoFailure("the signed ledger disagrees with the voucher's balances: " + "; ".join(wrong))
        self.echo(f"  check      replaying the ledger gives {replayed[available]} fen available and "
                  f"{replayed[held]} fen held: it agrees with the voucher")


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
@with_appcontext
def demo_command(url, sme_token, officer_token, provider_token, sh_officer_token):
    """Drive the whole voucher lifecycle through the API of a running server and print each step.

    A Kunshan enterprise spends a Kunshan voucher at a Shanghai provider. Unless
    all four tokens are given, the demo mints short-lived tokens in this
    machine's database (DATABASE_URL) and revokes them at the end. Each step's
    ledger entry is read from that database.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise click.BadParameter("use http://host:port or https://host", param_hint="--url")
    given = [sme_token, officer_token, provider_token, sh_officer_token]
    if any(given) and not all(given):
        raise click.UsageError("pass all four tokens (--sme-token, --officer-token, --provider-token, "
                               "--sh-officer-token) or none, and the demo mints its own")
    http_client = Http(url)
    ready = http_client.call("GET", "/readyz")
    if ready.status != 200:
        raise DemoFailure(f"the server at {http_client.base_url} is not ready ({ready.status}): {ready.problem}")

    minted = not any(given)
    tokens = _mint_tokens() if minted else Tokens(*given)
    click.echo(f"Innovation voucher demo (科技创新券, 通用通兑) against {http_client.base_url}")
    click.echo("  tokens      " + ("minted for this run (sme, KS officer, SH provider, SH officer), "
                                   "revoked at the end" if minted else "as given"))
    try:
        Demo(http_client, tokens, LedgerView()).run()
    finally:
        if minted:
            _revoke_tokens(tokens.minted_ids)
