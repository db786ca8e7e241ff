"""Races through a real multi-process server (4 gunicorn workers) on the test
database (SQLite, or PostgreSQL with VOUCHERS_TEST_DATABASE_URL): the database
alone serialises what must be serial."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from zoneinfo import ZoneInfo

from helpers import add_evidence_over_http, unique_invoice
from server import seeded_server as server  # noqa: F401 (the module's fixture)
from sqlmodel import Session, func, select

from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all
from voucher_service.journal.tree import tree_size
from voucher_service.models import Application, Redemption, SettlementRedemption, Voucher

THREADS = 40


def race(calls):
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda call: call(), calls))


def db(server):
    return server.app.app_context()


def issue(server, enterprise="ent-ks-003", region="KS", amount_fen=100_000):
    sme = server.actors.token("sme", enterprise_id=enterprise)
    officer = server.actors.token("officer", region=region)
    application = server.client.api("POST", "/applications", sme, {"amount_fen": amount_fen, "purpose": "race"})
    assert application.status == 201, application.raw
    approved = server.client.api("POST", f"/applications/{application.json['id']}/approve", officer, {})
    assert approved.status == 200, approved.raw
    return sme, officer, approved.json["voucher"]


def test_forty_reservations_against_room_for_ten(server):
    sme, _officer, voucher = issue(server, amount_fen=100_000)
    body = {"voucher_id": voucher["id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
            "service_fee_fen": 20_000, "amount_fen": 10_000}
    results = race([lambda: server.client.api("POST", "/redemptions", sme, body) for _ in range(40)])
    statuses = sorted(r.status for r in results)
    assert statuses.count(201) == 10 and statuses.count(409) == 30, [
        (r.status, r.raw) for r in results if r.status not in (201, 409)][:3]
    assert all(r.json["rule"] == "available_balance" for r in results if r.status == 409)
    after = server.client.api("GET", f"/vouchers/{voucher['id']}", sme).json
    assert (after["available_fen"], after["held_fen"]) == (0, 100_000), after
    with db(server), Session(get_engine()) as session:
        assert check_all(session) == []


def test_racing_approvals_issue_one_voucher(server):
    sme = server.actors.token("sme", enterprise_id="ent-sh-001")
    application = server.client.api("POST", "/applications", sme, {"amount_fen": 50_000, "purpose": "race"})
    assert application.status == 201, application.raw
    officers = [server.actors.token("officer", region="SH") for _ in range(12)]
    results = race([lambda t=t: server.client.api("POST", f"/applications/{application.json['id']}/approve", t, {})
                    for t in officers])
    statuses = sorted(r.status for r in results)
    assert statuses.count(200) == 1 and statuses.count(409) == 11, statuses
    with db(server), Session(get_engine()) as session:
        count = session.exec(select(func.count()).select_from(Voucher)
                             .where(Voucher.application_id == application.json["id"])).one()
        assert count == 1


def test_racing_replays_of_one_idempotency_key_have_one_effect(server):
    sme = server.actors.token("sme", enterprise_id="ent-wj-001")
    body = {"amount_fen": 12_345, "purpose": "the same request, sent 30 times at once"}
    results = race([lambda: server.client.api("POST", "/applications", sme, body, idempotency_key="race-1")
                    for _ in range(30)])
    assert {r.status for r in results} == {201}, [(r.status, r.raw) for r in results]
    assert len({r.json["id"] for r in results}) == 1
    with db(server), Session(get_engine()) as session:
        count = session.exec(select(func.count()).select_from(Application)
                             .where(Application.purpose == body["purpose"])).one()
        assert count == 1


def test_racing_settlement_creation_puts_every_redemption_in_one_batch(server):
    sme, officer, voucher = issue(server, enterprise="ent-ks-001", amount_fen=200_000)
    provider = server.actors.token("provider", provider_id="prv-sh-001")
    redeemed = []
    for _ in range(5):
        reserved = server.client.api("POST", "/redemptions", sme, {
            "voucher_id": voucher["id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
            "service_fee_fen": 20_000, "amount_fen": 10_000})
        assert reserved.status == 201, reserved.raw
        rid = reserved.json["id"]
        add_evidence_over_http(server.client, rid, provider)
        assert server.client.api("POST", f"/redemptions/{rid}/claim", provider,
                                 {"invoice_no": unique_invoice("R"), "service_fee_fen": 20_000,
                                  "amount_fen": 10_000}).status == 200
        assert server.client.api("POST", f"/redemptions/{rid}/confirm", sme).status == 200
        assert server.client.api("POST", f"/redemptions/{rid}/approve", officer).status == 200
        redeemed.append(rid)
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    finance = [server.actors.token("finance", region="KS") for _ in range(8)]
    results = race([lambda t=t: server.client.api("POST", "/settlements", t, {"period": month}) for t in finance])
    created = [r.json for r in results if r.status == 201]
    assert len(created) >= 1 and all(r.status in (201, 409) for r in results), [(r.status, r.raw) for r in results]
    with db(server), Session(get_engine()) as session:
        rows = session.exec(select(SettlementRedemption.redemption_id, SettlementRedemption.settlement_id)
                            .where(SettlementRedemption.redemption_id.in_(redeemed))).all()
    batches_of = {}
    for redemption_id, settlement_id in rows:
        batches_of.setdefault(redemption_id, set()).add(settlement_id)
    assert set(batches_of) == set(redeemed)
    assert all(len(batches) == 1 for batches in batches_of.values()), batches_of


def metric(text: str, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()) and (
                series == name or series.startswith(name + "{")):
            total += float(value)
    return total


def scrape(server) -> str:
    reply = server.client.request("GET", "/metrics")
    assert reply.status == 200, reply.raw
    return reply.text


def test_metrics_add_up_across_workers(server):
    before = scrape(server)
    health_before = metric(before, "vouchers_http_request_duration_seconds_count", route="/healthz")
    appends_before = metric(before, "vouchers_ledger_appends_total")
    race([lambda: server.client.request("GET", "/healthz") for _ in range(60)])
    issue(server, enterprise="ent-sh-002", region="SH", amount_fen=1_000)  # two entries
    # Whichever of the 4 workers answers, the scrape sums all of them.
    for _ in range(4):
        after = scrape(server)
        assert metric(after, "vouchers_http_request_duration_seconds_count", route="/healthz") == health_before + 60
        assert metric(after, "vouchers_ledger_appends_total") == appends_before + 2
        assert metric(after, "vouchers_ledger_append_duration_seconds_count") >= appends_before + 2
    with db(server), Session(get_engine()) as session:
        assert metric(after, "vouchers_ledger_tree_size") == tree_size(session)


def test_two_claims_racing_with_one_invoice_number(server):
    """Two redemptions at one provider, claimed at once with the same invoice number,
    through different workers: exactly one claim stands, the other is 409 duplicate_invoice."""
    sme, _officer, voucher = issue(server, enterprise="ent-ks-002", amount_fen=100_000)
    provider = server.actors.token("provider", provider_id="prv-sh-001")
    rids = []
    for _ in range(2):
        reserved = server.client.api("POST", "/redemptions", sme, {
            "voucher_id": voucher["id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
            "service_fee_fen": 20_000, "amount_fen": 10_000})
        assert reserved.status == 201, reserved.raw
        rids.append(reserved.json["id"])
        add_evidence_over_http(server.client, rids[-1], provider)
    invoice_no = unique_invoice("RACE")
    body = {"invoice_no": invoice_no, "service_fee_fen": 20_000, "amount_fen": 10_000}
    with db(server), Session(get_engine()) as session:
        size = tree_size(session)
    results = race([lambda rid=rid: server.client.api("POST", f"/redemptions/{rid}/claim", provider, body)
                    for rid in rids])
    assert sorted(r.status for r in results) == [200, 409], [(r.status, r.raw) for r in results]
    refused = next(r for r in results if r.status == 409)
    assert refused.json["rule"] == "duplicate_invoice", refused.json
    assert "duplicate invoice" in refused.json["detail"].lower()
    with db(server), Session(get_engine()) as session:
        assert tree_size(session) == size + 1  # one claim entry, none for the refusal
        statuses = session.exec(select(Redemption.status).where(Redemption.id.in_(rids))).all()
        assert sorted(statuses) == ["claimed", "reserved"]
        assert check_all(session) == []
