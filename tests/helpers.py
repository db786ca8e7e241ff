"""Assertions and small builders shared by the test modules."""
from __future__ import annotations

import io
import json
import re
import secrets
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, func, select

from voucher_service.db import get_engine, read_only
from voucher_service.models import Account, LedgerEntry
from voucher_service.providers.uscc import uscc_check_char, uscc_problem

PROBLEM_JSON = "application/problem+json"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def assert_problem(response, status):
    """An RFC 9457 problem of this status, with every member a client relies on."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == PROBLEM_JSON, response.headers
    body = json.loads(response.get_data(as_text=True))
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body.get("detail"), str) and body["detail"]
    return body


def assert_rule(response, rule: str, *phrases: str):
    """A 409 refusal that names its rule, in `rule` and in words at the start of `detail`."""
    body = assert_problem(response, 409)
    assert body.get("rule") == rule, body
    assert rule.replace("_", " ") in body["detail"].lower(), body["detail"]
    for phrase in phrases:
        assert phrase in body["detail"], body["detail"]
    return body


@contextmanager
def nothing_changes(app):
    """Every request in the block is refused: no ledger entry, no balance moves."""
    size, accounts = ledger_size(app), account_balances(app)
    yield
    assert ledger_size(app) == size, "a refused request appended a ledger entry"
    assert account_balances(app) == accounts, "a refused request moved money"


def ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def ledger_size(app) -> int:
    with app.app_context(), Session(get_engine()) as session:
        return session.exec(select(func.count()).select_from(LedgerEntry)).one()


def account_balances(app) -> dict[str, int]:
    with app.app_context(), Session(get_engine()) as session:
        return {a.name: a.balance_fen for a in session.exec(select(Account)).all()}


def pdf_bytes() -> bytes:
    """A minimal document the service takes as a PDF (by its first bytes), unique each call."""
    return b"%PDF-1.4\n" + secrets.token_bytes(16) + b"\n%%EOF\n"


def upload_document(provider, redemption_id: str, kind: str, content: bytes | None = None, *,
                    filename: str = "document.pdf", headers=None):
    """POST /redemptions/{id}/documents as multipart/form-data through the test client."""
    content = pdf_bytes() if content is None else content
    return provider.http.post(f"/api/v1/redemptions/{redemption_id}/documents", headers=provider._headers(headers),
                              data={"kind": kind, "file": (io.BytesIO(content), filename)},
                              content_type="multipart/form-data")


def add_evidence(provider, redemption_id: str) -> list[dict]:
    """A contract and an invoice (fresh PDFs) on the redemption, as every claim needs (DESIGN §9)."""
    uploaded = []
    for kind in ("contract", "invoice"):
        r = upload_document(provider, redemption_id, kind)
        assert r.status_code == 201, (r.status_code, r.get_data(as_text=True))
        uploaded.append(r.get_json())
    return uploaded


def claim_with_evidence(provider, redemption_id: str, body: dict, **kw):
    """Upload a contract and an invoice, then POST the claim: the response of the claim."""
    add_evidence(provider, redemption_id)
    return provider.post(f"/redemptions/{redemption_id}/claim", json=body, **kw)


def add_evidence_over_http(client, redemption_id: str, provider_token: str) -> list[dict]:
    """add_evidence through a real server: `client` is a voucher_service.cli.client.ApiClient."""
    uploaded = []
    for kind in ("contract", "invoice"):
        reply = client.upload(f"/redemptions/{redemption_id}/documents", provider_token, pdf_bytes(),
                              filename=f"{kind}.pdf", fields={"kind": kind})
        assert reply.status == 201, (reply.status, reply.raw[:500])
        uploaded.append(reply.json)
    return uploaded


def redeem(actors, enterprise_id: str, provider_id: str, amount_fen: int) -> str:
    """A voucher of the enterprise's home region (ent-ks-… is KS's), spent at the provider with its
    evidence, claimed, confirmed and approved: the redemption id, `redeemed`."""
    region = enterprise_id.split("-")[1].upper()
    sme, officer = actors.sme(enterprise_id), actors.officer(region)
    application = ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": "testing"}), 201)
    voucher = ok(officer.post(f"/applications/{application['id']}/approve", json={}))["voucher"]
    fee = 4 * amount_fen
    rid = ok(sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": provider_id,
                                            "catalog_code": "TS-01", "service_fee_fen": fee,
                                            "amount_fen": amount_fen}), 201)["id"]
    add_evidence(actors.provider(provider_id), rid)
    ok(actors.provider(provider_id).post(f"/redemptions/{rid}/claim", json={
        "invoice_no": f"INV-{rid[-8:]}", "service_fee_fen": fee, "amount_fen": amount_fen}))
    ok(sme.post(f"/redemptions/{rid}/confirm"))
    redeemed = ok(officer.post(f"/redemptions/{rid}/approve"))
    assert redeemed["status"] == "redeemed", redeemed
    return rid


def unique_invoice(prefix: str = "INV") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def current_month() -> str:
    return datetime.now(SHANGHAI).strftime("%Y-%m")


def make_uscc(division: str = "320583", letters: bool = False) -> str:
    """A fresh, valid GB 32100 code, its GB 11714 organisation code checked too;
    `letters` starts the organisation code with letters, as many real ones do ("MA...")."""
    org = f"MA{secrets.randbelow(10**6):06d}" if letters else f"{secrets.randbelow(10**8):08d}"
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(org, (3, 7, 9, 10, 5, 8, 4, 2)))
    check = 11 - total % 11
    org += {10: "X", 11: "0"}.get(check, str(check))
    first17 = "91" + division + org
    code = first17 + uscc_check_char(first17)
    assert uscc_problem(code) is None, code
    return code


def propose_catalogue_change(officer, method: str, path: str, body: dict | None = None) -> dict:
    """POST /catalog or PATCH /catalog/{code} by an officer: a proposal (202), not yet a change."""
    r = officer.post(path, json=body) if method == "POST" else officer.patch(path, json=body)
    assert r.status_code == 202, (r.status_code, r.get_json())
    assert r.headers["Location"].endswith(f"/catalog/proposals/{r.get_json()['id']}"), r.headers
    return r.get_json()


def adopt_catalogue_change(actors, method: str, path: str, body: dict | None = None, *, region: str = "SH") -> dict:
    """Propose a catalogue change as an officer of `region`, then have an officer of
    every other member region approve it, so that it is in effect whatever the quorum.
    Returns the adopted proposal."""
    proposer = actors.officer(region)
    proposal = propose_catalogue_change(proposer, method, path, body)
    members = [r["code"] for r in ok(proposer.get("/regions"))]
    for other in members:
        if proposal["status"] != "open":
            break
        if other not in {a["region"] for a in proposal["approvals"]}:
            proposal = ok(actors.officer(other).post(f"/catalog/proposals/{proposal['id']}/approve"))
    assert proposal["status"] == "adopted", proposal
    return proposal


def publish(app, witnesses=None):
    """One round of the background publisher, now: sign the tree if it grew and
    ask the witnesses (none unless given). Returns the published checkpoint row."""
    from voucher_service.journal.publisher import publish_round
    with app.app_context():
        return publish_round(get_engine(), app.extensions["vouchers_keyring"], app.config["VOUCHERS_LEDGER_ORIGIN"],
                            app.extensions["vouchers_witnesses"] if witnesses is None else witnesses,
                            timeout_s=app.config["VOUCHERS_WITNESS_TIMEOUT_S"], reading=read_only)


def published_checkpoint(app) -> str:
    """Publish, then GET /ledger/checkpoint as anyone would."""
    publish(app)
    r = app.test_client().get("/api/v1/ledger/checkpoint")
    assert r.status_code == 200 and r.mimetype == "text/plain", r.get_data(as_text=True)
    return r.get_data(as_text=True)


# The background publisher's interval for the tests' gunicorn servers: short,
# so a test waits a fraction of a second for the checkpoint over its writes.
TEST_CHECKPOINT_INTERVAL_S = 0.3


def wait_for_checkpoint(client, size: int, timeout_s: float = 30, settle: bool = True):
    """GET /ledger/checkpoint from a running server until it covers `size` entries; the reply.

    A worker answers from its memory of the note for up to
    PUBLISHED_NOTE_TTL_S, so another worker may still serve the older one:
    `settle` waits that long before returning, after which every worker
    serves this note or a newer one."""
    import time

    from voucher_service.journal.tree import PUBLISHED_NOTE_TTL_S
    deadline = time.monotonic() + timeout_s
    while True:
        reply = client.api("GET", "/ledger/checkpoint", headers={"Accept": "*/*"})
        if reply.status == 200 and int(reply.raw.decode("utf-8").split("\n")[1]) >= size:
            if settle:
                time.sleep(PUBLISHED_NOTE_TTL_S)
            return reply
        if time.monotonic() > deadline:
            raise AssertionError(f"no checkpoint of size {size} published within {timeout_s} s: "
                                 f"{reply.status} {reply.raw[:300]!r}")
        time.sleep(0.1)


class Console:
    """A browser on the web console, as the test client: signs in by pasting a
    token into the sign-in form, and posts forms with the page's form token."""

    CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')

    def __init__(self, app, token: str | None = None, language: str = "en"):
        self.app = app
        self.http = app.test_client()
        self.language = language
        if token is not None:
            self.sign_in(token)

    def get(self, path: str, **kwargs):
        kwargs.setdefault("headers", {}).setdefault("Accept-Language", self.language)
        return self.http.get(path, **kwargs)

    def form_token(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, page.get_data(as_text=True)[:500]
        found = self.CSRF.search(page.get_data(as_text=True))
        assert found, f"no form token on {path}"
        return found.group(1)

    def sign_in(self, token: str, next_path: str = ""):
        form = {"csrf_token": self.form_token("/console/sign-in"), "token": token, "next": next_path}
        return self.http.post("/console/sign-in", data=form, headers={"Accept-Language": self.language})

    def post(self, path: str, data: dict | None = None, *, from_page: str | None = None, **kwargs):
        """Post a form of `from_page` (default: the page at `path`), with its form token."""
        form = {"csrf_token": self.form_token(from_page or path), **(data or {})}
        kwargs.setdefault("headers", {}).setdefault("Accept-Language", self.language)
        return self.http.post(path, data=form, **kwargs)

    def page(self, path: str, status: int = 200) -> str:
        response = self.get(path)
        assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:800])
        return response.get_data(as_text=True)
