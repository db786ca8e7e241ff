"""Public programme figures (DESIGN §8, GET /reports/programme): after a real
cross-region lifecycle, as CSV, filtered, refused, without a token, and, for
random histories, equal to a replay of the ledger export's postings computed
here, independently of the service's SQL.
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import add_evidence, SHANGHAI, assert_problem, current_month, ok

KS_ENTERPRISE, SH_ENTERPRISE, WJ_ENTERPRISE = "ent-ks-003", "ent-sh-001", "ent-wj-001"
SH_PROVIDER, KS_PROVIDER, WJ_PROVIDER = "prv-sh-001", "prv-ks-002", "prv-wj-001"
ENTERPRISE_REGION = {KS_ENTERPRISE: "KS", SH_ENTERPRISE: "SH", WJ_ENTERPRISE: "WJ"}
FIGURES = ("vouchers_issued", "issued_fen", "redemptions", "redeemed_fen", "settled_fen",
           "cross_region_redeemed_fen")
UTF8_BOM = b"\xef\xbb\xbf"


# --- helpers ----------------------------------------------------------------------------

def previous_month() -> str:
    first = datetime.now(SHANGHAI).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def report(client, query: str = "", status: int = 200) -> dict:
    return ok(client.get(f"/reports/programme{query}"), status)


def issue(actors, enterprise_id: str, amount_fen: int) -> dict:
    sme, officer = actors.sme(enterprise_id), actors.officer(ENTERPRISE_REGION[enterprise_id])
    application = ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": "testing"}), 201)
    return ok(officer.post(f"/applications/{application['id']}/approve", json={}))["voucher"]


def reserve(actors, enterprise_id: str, voucher_id: str, provider_id: str, amount_fen: int):
    return actors.sme(enterprise_id).post("/redemptions", json={
        "voucher_id": voucher_id, "provider_id": provider_id, "catalog_code": "TS-01",
        "service_fee_fen": 4 * amount_fen, "amount_fen": amount_fen})


def redeem_reserved(actors, enterprise_id: str, redemption: dict) -> None:
    rid, amount_fen = redemption["id"], redemption["amount_fen"]
    add_evidence(actors.provider(redemption["provider_id"]), rid)
    ok(actors.provider(redemption["provider_id"]).post(f"/redemptions/{rid}/claim", json={
        "invoice_no": f"INV-{rid[-8:]}", "service_fee_fen": 4 * amount_fen, "amount_fen": amount_fen}))
    ok(actors.sme(enterprise_id).post(f"/redemptions/{rid}/confirm"))
    assert ok(actors.officer(ENTERPRISE_REGION[enterprise_id]).post(f"/redemptions/{rid}/approve"))["status"] \
        == "redeemed"


def settle_ks_month(actors) -> dict | None:
    """KS (monthly) settles this month's redeemed redemptions: every touched region approves,
    then KS executes. None when nothing is due (or a batch is already open)."""
    creator = actors.finance("KS")
    created = creator.post("/settlements", json={"period": current_month()})
    if created.status_code == 409:
        return None
    batch = ok(created, 201)
    for region in batch["approvals_required"]:
        ok(actors.finance(region).post(f"/settlements/{batch['id']}/approve"))
    return ok(creator.post(f"/settlements/{batch['id']}/execute"))


def provider_regions(auditor) -> dict[str, str]:
    regions, cursor = {}, ""
    while cursor is not None:
        page = ok(auditor.get(f"/providers?limit=100{'&cursor=' + cursor if cursor else ''}"))
        regions.update({p["id"]: p["region"] for p in page["items"]})
        cursor = page["next_cursor"]
    return regions


def export_entries(auditor) -> list[dict]:
    response = auditor.get("/ledger/export")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines() if line]


def local_month(ts: str) -> str:
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def replay(entries: list[dict], home: dict[str, str], region: str | None = None) -> tuple[list[dict], dict]:
    """The report, from the export alone (and the providers' home regions)."""
    rows: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    for entry in entries:
        month, issuing = local_month(entry["ts"]), entry["region"]
        for posting in entry["postings"]:
            source, destination, amount = posting["source"], posting["destination"], posting["amount"]
            if entry["kind"] == "voucher.issued" and source.startswith("budget:"):
                if region in (None, issuing):
                    figures = rows[(month, issuing, None)]
                    figures["vouchers_issued"] += 1
                    figures["issued_fen"] += amount
            elif entry["kind"] == "redemption.redeemed" and source.endswith(":held"):
                provider = destination.split(":", 2)[2]
                if region in (None, issuing, home[provider]):
                    figures = rows[(month, issuing, home[provider])]
                    figures["redemptions"] += 1
                    figures["redeemed_fen"] += amount
                    if home[provider] != issuing:
                        figures["cross_region_redeemed_fen"] += amount
            elif entry["kind"] == "settlement.executed" and destination.startswith("paid:"):
                provider = destination.removeprefix("paid:")
                if region in (None, issuing, home[provider]):
                    rows[(month, issuing, home[provider])]["settled_fen"] += amount
    ordered = [{"month": m, "issuing_region": i, "provider_region": p, **rows[(m, i, p)]}
               for m, i, p in sorted(rows, key=lambda k: (k[0], k[1], k[2] or ""))]
    totals = {name: sum(row[name] for row in ordered) for name in FIGURES}
    return ordered, totals


def figures(row: dict) -> tuple:
    return tuple(row[name] for name in ("month", "issuing_region", "provider_region", *FIGURES))


# --- 1. a real cross-region lifecycle ---------------------------------------------------

def test_a_ks_voucher_redeemed_and_settled_in_sh_is_counted_once_in_each_figure(fresh_app, fresh_actors):
    actors, anonymous, month = fresh_actors, fresh_actors.anonymous(), current_month()
    assert report(anonymous, f"?from={month}&to={month}")["rows"] == []
    amount = 250_005  # 2,500.05 CNY
    voucher = issue(actors, KS_ENTERPRISE, amount)
    redemption = ok(reserve(actors, KS_ENTERPRISE, voucher["id"], SH_PROVIDER, amount), 201)

    reserved = report(anonymous, f"?from={month}&to={month}")
    assert [figures(r) for r in reserved["rows"]] == [(month, "KS", None, 1, amount, 0, 0, 0, 0)]

    redeem_reserved(actors, KS_ENTERPRISE, redemption)
    redeemed = report(anonymous, f"?from={month}&to={month}")
    assert [figures(r) for r in redeemed["rows"]] == [(month, "KS", None, 1, amount, 0, 0, 0, 0),
                                                      (month, "KS", "SH", 0, 0, 1, amount, 0, amount)]

    assert settle_ks_month(actors)["status"] == "executed"
    settled = report(anonymous, f"?from={month}&to={month}")
    assert [figures(r) for r in settled["rows"]] == [(month, "KS", None, 1, amount, 0, 0, 0, 0),
                                                     (month, "KS", "SH", 0, 0, 1, amount, amount, amount)]
    assert settled["totals"] == {"vouchers_issued": 1, "issued_fen": amount, "redemptions": 1,
                                 "redeemed_fen": amount, "settled_fen": amount, "cross_region_redeemed_fen": amount}
    assert (settled["from"], settled["to"], settled["region"], settled["timezone"]) == (
        month, month, None, "Asia/Shanghai")
    assert settled["ledger_size"] == len(export_entries(actors.auditor()))


def test_a_redemption_at_a_home_provider_is_not_cross_region(fresh_app, fresh_actors):
    actors, month = fresh_actors, current_month()
    voucher = issue(actors, KS_ENTERPRISE, 10_000)
    redeem_reserved(actors, KS_ENTERPRISE, ok(reserve(actors, KS_ENTERPRISE, voucher["id"], KS_PROVIDER, 3_000), 201))
    body = report(actors.anonymous(), f"?from={month}&to={month}")
    assert [figures(r) for r in body["rows"]] == [(month, "KS", None, 1, 10_000, 0, 0, 0, 0),
                                                  (month, "KS", "KS", 0, 0, 1, 3_000, 0, 0)]
    assert body["totals"]["cross_region_redeemed_fen"] == 0


# --- 2. CSV, filters, defaults ----------------------------------------------------------

def test_csv_has_a_bom_yuan_an_empty_provider_cell_for_issuance_and_a_total_row(fresh_app, fresh_actors):
    actors, month = fresh_actors, current_month()
    voucher = issue(actors, KS_ENTERPRISE, 250_005)
    redeem_reserved(actors, KS_ENTERPRISE, ok(reserve(actors, KS_ENTERPRISE, voucher["id"], SH_PROVIDER, 1_001), 201))
    response = actors.anonymous().get(f"/reports/programme?from={month}&to={month}", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f"programme-{month}-{month}.csv" in response.headers["Content-Disposition"]
    raw = response.get_data()
    assert raw.startswith(UTF8_BOM)
    lines = list(csv.reader(io.StringIO(raw[len(UTF8_BOM):].decode("utf-8"))))
    assert lines == [
        ["month", "issuing_region", "provider_region", "vouchers_issued", "issued_cny", "redemptions",
         "redeemed_cny", "settled_cny", "cross_region_redeemed_cny"],
        [month, "KS", "", "1", "2500.05", "0", "0.00", "0.00", "0.00"],
        [month, "KS", "SH", "0", "0.00", "1", "10.01", "0.00", "10.01"],
        ["total", "", "", "1", "2500.05", "1", "10.01", "0.00", "10.01"],
    ]
    # JSON stays the default, and what a browser's Accept prefers.
    assert actors.anonymous().get(f"/reports/programme?from={month}&to={month}").mimetype == "application/json"


def test_region_keeps_what_it_issued_and_what_its_providers_redeemed(fresh_app, fresh_actors):
    actors, anonymous, month = fresh_actors, fresh_actors.anonymous(), current_month()
    voucher = issue(actors, KS_ENTERPRISE, 20_000)
    redeem_reserved(actors, KS_ENTERPRISE, ok(reserve(actors, KS_ENTERPRISE, voucher["id"], SH_PROVIDER, 2_000), 201))
    span = f"from={month}&to={month}"
    ks = report(anonymous, f"?{span}&region=KS")
    assert [(r["issuing_region"], r["provider_region"]) for r in ks["rows"]] == [("KS", None), ("KS", "SH")]
    sh = report(anonymous, f"?{span}&region=SH")
    assert [figures(r) for r in sh["rows"]] == [(month, "KS", "SH", 0, 0, 1, 2_000, 0, 2_000)]
    assert sh["region"] == "SH" and sh["totals"]["issued_fen"] == 0
    assert report(anonymous, f"?{span}&region=WJ")["rows"] == []
    # Months outside the window are not counted; the ledger they describe is the same.
    earlier = report(anonymous, f"?from={previous_month()}&to={previous_month()}")
    assert earlier["rows"] == [] and earlier["ledger_size"] == ks["ledger_size"]


def test_defaults_are_this_year_up_to_this_month(app, actors):
    body = report(actors.anonymous())
    month = current_month()
    assert (body["from"], body["to"]) == (f"{month[:4]}-01", month)
    assert report(actors.anonymous(), "?to=2025-06")["from"] == "2025-01"


def test_no_token_is_needed_and_every_role_may_read(app, actors):
    assert actors.anonymous().get("/reports/programme").status_code == 200
    for client in (actors.sme(KS_ENTERPRISE), actors.provider(SH_PROVIDER), actors.officer("SH"),
                   actors.finance("KS"), actors.auditor()):
        assert client.get("/reports/programme").status_code == 200


# --- 3. what is refused -----------------------------------------------------------------

def test_bad_months_are_422_naming_the_field(app, actors):
    anonymous = actors.anonymous()
    for query, field in [("from=2026-13", "from"), ("from=26-01", "from"), ("to=2026-1", "to"),
                         ("to=2026-01%0A", "to"), ("from=0000-01&to=2026-01", "from"), ("to=9999-01", "to"),
                         ("from=2026-03&to=2026-02", "to"), ("from=2000-01&to=2026-12", "to")]:
        body = assert_problem(anonymous.get(f"/reports/programme?{query}"), 422)
        assert field in body["errors"], (query, body)


def test_a_malformed_region_is_422_and_an_unknown_one_404(app, actors):
    anonymous = actors.anonymous()
    for bad in ("ks", "K", "KS1", "ABCDEFGHI", "%00"):
        body = assert_problem(anonymous.get(f"/reports/programme?region={bad}"), 422)
        assert "region" in body["errors"], body
    assert "ZZ" in assert_problem(anonymous.get("/reports/programme?region=ZZ"), 404)["detail"]


# --- 4. random histories agree with the ledger ------------------------------------------

ENTERPRISES = st.sampled_from([KS_ENTERPRISE, SH_ENTERPRISE, WJ_ENTERPRISE])
PROVIDERS = st.sampled_from([SH_PROVIDER, KS_PROVIDER, WJ_PROVIDER])
# A voucher and what becomes of each redemption against it: every history spends.
REDEMPTION = st.tuples(PROVIDERS, st.integers(1, 600), st.sampled_from(["reserved", "cancelled", "redeemed"]))
VOUCHER = st.tuples(ENTERPRISES, st.integers(2_000, 50_000), st.lists(REDEMPTION, max_size=3))


@settings(max_examples=12, deadline=None)
@given(history=st.lists(VOUCHER, min_size=1, max_size=4), settle=st.booleans(),
       region=st.sampled_from([None, "KS", "SH", "WJ"]))
def test_the_report_is_a_replay_of_the_ledger_export(app, actors, history, settle, region):
    for enterprise, face_fen, redemptions in history:
        voucher = issue(actors, enterprise, face_fen)
        for provider, amount_fen, fate in redemptions:
            response = reserve(actors, enterprise, voucher["id"], provider, amount_fen)
            assert response.status_code in (201, 409), response.get_data(as_text=True)
            if response.status_code == 409:  # a rule of the programme (a related party, say): nothing to count
                continue
            if fate == "redeemed":
                redeem_reserved(actors, enterprise, response.get_json())
            elif fate == "cancelled":
                ok(actors.sme(enterprise).post(f"/redemptions/{response.get_json()['id']}/cancel", json={}))
    if settle:
        settle_ks_month(actors)

    auditor = actors.auditor()
    entries = export_entries(auditor)
    first = min(local_month(e["ts"]) for e in entries)
    query = f"?from={first}&to={current_month()}" + (f"&region={region}" if region else "")
    body = report(actors.anonymous(), query)
    rows, totals = replay(entries, provider_regions(auditor), region)
    assert body["ledger_size"] == len(entries)
    assert [figures(r) for r in body["rows"]] == [figures(r) for r in rows]
    assert body["totals"] == totals
