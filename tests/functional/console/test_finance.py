"""The finance officer's console pages (DESIGN §11): settlement batches through
the forms — created, approved by each region they touch, executed, the bank's
results recorded, the payout file downloaded — the budget, repayments, and the
charts, whose tables must carry the programme report's figures to the fen.

One app for the module: the batch story is KS's (a KS voucher spent at an SH
provider and one at a KS provider); the charts' own settled cross-region
month is WJ's, so neither test takes the other's redemptions into a batch.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from helpers import Console, current_month, nothing_changes, ok, redeem

from voucher_service.console.filters import yuan

SHANGHAI = ZoneInfo("Asia/Shanghai")
KS_ENTERPRISE, WJ_ENTERPRISE = "ent-ks-003", "ent-wj-001"
SH_PROVIDER, KS_PROVIDER = "prv-sh-001", "prv-ks-002"
TO_SH_FEN, TO_KS_FEN = 250_005, 120_030  # odd fen: they must survive every page and file
BATCH_URL = re.compile(r"^/console/finance/batches/(stl_[0-9a-f]+)\?done=created$")
# DESIGN §9: the payout CSV's columns.
PAYOUT_COLUMNS = ["settlement_id", "period", "paying_region", "provider_id", "provider_name", "uscc",
                  "provider_region", "amount_cny", "redemption_count", "gross_fen", "offset_fen", "net_fen",
                  "result", "bank_reference", "account_name", "bank_name", "account_no"]


def finance_console(app, actors, region: str) -> tuple[Console, object]:
    """A finance officer of `region` in the console, and the same officer's API client."""
    token = actors.token("finance", region=region)
    client = actors.finance(region)
    client.token = token
    return Console(app, token), client


def cell(html: str, row_attr: str, cell_attr: str) -> str:
    """The text of the table cell marked `cell_attr` in the row marked `row_attr`."""
    row = re.search(rf"<tr {row_attr}>(.*?)</tr>", html, re.S)
    assert row, f"no row {row_attr}"
    found = re.search(rf"<td[^>]*{cell_attr}[^>]*>([^<]*)</td>", row.group(1))
    assert found, f"no cell {cell_attr} in row {row_attr}"
    return found.group(1).strip()


@pytest.fixture(scope="module")
def ks_redemptions(actors):
    return {SH_PROVIDER: redeem(actors, KS_ENTERPRISE, SH_PROVIDER, TO_SH_FEN),
            KS_PROVIDER: redeem(actors, KS_ENTERPRISE, KS_PROVIDER, TO_KS_FEN)}


def test_a_cross_region_batch_from_creation_to_payout_file(app, actors, ks_redemptions):
    creator, creator_api = finance_console(app, actors, "KS")
    page = creator.page("/console/finance/batches")
    assert "New batch" in page and f'value="{current_month()}"' in page, "KS pays monthly: this month is offered"

    r = creator.post("/console/finance/batches", {"period": current_month()})
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    sid = BATCH_URL.match(r.headers["Location"]).group(1)
    page = creator.page(r.headers["Location"])
    assert "The batch was created" in page
    for text in (SH_PROVIDER, KS_PROVIDER, yuan(TO_SH_FEN), yuan(TO_KS_FEN), yuan(TO_SH_FEN + TO_KS_FEN)):
        assert text in page
    assert page.count("awaited") == 2, "KS and SH must both approve"
    assert sid in creator.page("/console/finance/batches")

    # Four eyes: the creator's approval is refused, shown, and changes nothing.
    with nothing_changes(app):
        r = creator.post(f"/console/finance/batches/{sid}/approve", from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 409 and "four eyes" in r.get_data(as_text=True)
    assert ok(creator_api.get(f"/settlements/{sid}"))["approvals"] == []

    # WJ is not touched by the batch: it may neither see nor approve it.
    wj, _wj_api = finance_console(app, actors, "WJ")
    r = wj.get(f"/console/finance/batches/{sid}")
    assert r.status_code == 404 and SH_PROVIDER not in r.get_data(as_text=True)
    with nothing_changes(app):
        r = wj.post(f"/console/finance/batches/{sid}/approve", from_page="/console/finance/batches")
    body = r.get_data(as_text=True)
    assert r.status_code == 404 and 'role="alert"' in body and SH_PROVIDER not in body
    assert wj.get(f"/console/finance/batches/{sid}/payouts.csv").status_code == 404

    ks_second, _ = finance_console(app, actors, "KS")
    r = ks_second.post(f"/console/finance/batches/{sid}/approve", from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 303 and "Your region&#39;s approval was recorded" in ks_second.page(r.headers["Location"])
    sh, _ = finance_console(app, actors, "SH")
    page = sh.page(f"/console/finance/batches/{sid}")
    assert page.count("awaited") == 1 and "Approve for SH" in page
    r = sh.post(f"/console/finance/batches/{sid}/approve", from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 303
    batch = ok(creator_api.get(f"/settlements/{sid}"))
    assert batch["status"] == "approved" and sorted(a["region"] for a in batch["approvals"]) == ["KS", "SH"]
    assert "awaited" not in sh.page(f"/console/finance/batches/{sid}")

    # Only the paying region executes: SH's attempt is refused by the API.
    with nothing_changes(app):
        r = sh.post(f"/console/finance/batches/{sid}/execute", from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 403 and 'role="alert"' in r.get_data(as_text=True)
    r = creator.post(f"/console/finance/batches/{sid}/execute", from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 303 and ok(creator_api.get(f"/settlements/{sid}"))["status"] == "executed"

    # A paid line needs its bank reference: refused, what was typed is kept.
    lines = {"line": [SH_PROVIDER, KS_PROVIDER], f"result-{SH_PROVIDER}": "paid",
             f"bank_reference-{SH_PROVIDER}": "", f"result-{KS_PROVIDER}": "failed",
             f"reason-{KS_PROVIDER}": "account closed"}
    with nothing_changes(app):
        r = creator.post(f"/console/finance/batches/{sid}/results", lines, from_page=f"/console/finance/batches/{sid}")
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "bank_reference" in page and 'value="account closed"' in page
    r = creator.post(f"/console/finance/batches/{sid}/results",
                     {**lines, f"bank_reference-{SH_PROVIDER}": "ICBC-20260301-0042"},
                     from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 303, r.get_data(as_text=True)[:800]
    batch = ok(creator_api.get(f"/settlements/{sid}"))
    assert batch["status"] == "completed"
    assert {l["provider_id"]: (l["result"], l["bank_reference"], l["failure_reason"]) for l in batch["lines"]} == {
        SH_PROVIDER: ("paid", "ICBC-20260301-0042", None), KS_PROVIDER: ("failed", None, "account closed")}
    page = creator.page(f"/console/finance/batches/{sid}")
    assert "ICBC-20260301-0042" in page and "account closed" in page and "Record the results" not in page

    # The payout file: the API's CSV, as an attachment.
    r = sh.get(f"/console/finance/batches/{sid}/payouts.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"].startswith("attachment") and sid in r.headers["Content-Disposition"]
    raw = r.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    assert reader.fieldnames == PAYOUT_COLUMNS
    rows = {row["provider_id"]: row for row in reader}
    assert (rows[SH_PROVIDER]["gross_fen"], rows[SH_PROVIDER]["net_fen"], rows[SH_PROVIDER]["amount_cny"]) == (
        str(TO_SH_FEN), str(TO_SH_FEN), "2500.05")
    assert (rows[SH_PROVIDER]["result"], rows[KS_PROVIDER]["result"]) == ("paid", "failed")


def test_a_batch_of_the_wrong_cycle_is_refused_and_a_draft_is_cancelled_with_its_reason(app, actors):
    sh, sh_api = finance_console(app, actors, "SH")
    quarter = f"{datetime.now(SHANGHAI).year}-Q{(datetime.now(SHANGHAI).month - 1) // 3 + 1}"
    assert f'value="{quarter}"' in sh.page("/console/finance/batches"), "SH pays quarterly: this quarter is offered"
    with nothing_changes(app):
        r = sh.post("/console/finance/batches", {"period": current_month()})
    assert r.status_code == 409 and "payout cycle" in r.get_data(as_text=True)
    assert f'value="{current_month()}"' in r.get_data(as_text=True), "what was typed is kept"

    redeem(actors, "ent-sh-001", KS_PROVIDER, 10_000)
    r = sh.post("/console/finance/batches", {"period": quarter})
    sid = BATCH_URL.match(r.headers["Location"]).group(1)
    with nothing_changes(app):
        r = sh.post(f"/console/finance/batches/{sid}/cancel", {"reason": ""}, from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 422 and 'role="alert"' in r.get_data(as_text=True)
    r = sh.post(f"/console/finance/batches/{sid}/cancel", {"reason": "wrong period"},
                from_page=f"/console/finance/batches/{sid}")
    assert r.status_code == 303 and "The batch was cancelled" in sh.page(r.headers["Location"])
    batch = ok(sh_api.get(f"/settlements/{sid}"))
    assert (batch["status"], batch["reason"]) == ("cancelled", "wrong period")
    assert "Cancel the batch" not in sh.page(f"/console/finance/batches/{sid}")


def test_a_repayment_after_a_recovery_is_recorded_and_one_beyond_the_debt_is_refused(app, actors):
    rid = redeem(actors, WJ_ENTERPRISE, KS_PROVIDER, 40_000)
    wj_creator, wj_api = actors.finance("WJ"), actors.finance("WJ")
    sid = ok(wj_creator.post("/settlements", json={"period": current_month()}), 201)["id"]
    ok(wj_api.post(f"/settlements/{sid}/approve"))
    ok(actors.finance("KS").post(f"/settlements/{sid}/approve"))
    ok(wj_creator.post(f"/settlements/{sid}/execute"))
    ok(actors.officer("WJ").post(f"/redemptions/{rid}/recover", json={"amount_fen": 5_000, "reason": "overbilled"}))

    wj, _ = finance_console(app, actors, "WJ")
    with nothing_changes(app):
        r = wj.post("/console/finance/repayments", {"provider_id": KS_PROVIDER, "repay_amount": "50.01",
                                                     "repay_reference": "BOC-1"}, from_page="/console/finance/budget")
    assert r.status_code == 409 and "repayment within receivable" in r.get_data(as_text=True)
    assert 'value="50.01"' in r.get_data(as_text=True)
    r = wj.post("/console/finance/repayments", {"provider_id": KS_PROVIDER, "repay_amount": "30",
                                                 "repay_reference": "BOC-2"}, from_page="/console/finance/budget")
    assert r.status_code == 303 and "The repayment was recorded" in wj.page(r.headers["Location"])
    entries = ok(actors.auditor().get("/ledger/entries?kind=receivable.repaid&region=WJ"))["items"]
    assert [(e["refs"]["provider"], e["data"]["amount_fen"], e["data"]["reference"]) for e in entries] == [
        (KS_PROVIDER, 3_000, "BOC-2")]


def test_the_budget_is_shown_per_year_and_funded_in_yuan_to_the_fen(app, actors):
    ks, ks_api = finance_console(app, actors, "KS")
    year = datetime.now(SHANGHAI).year
    before = {y["fiscal_year"]: y for y in ok(ks_api.get("/regions/KS/budget"))["years"]}[year]
    page = ks.page("/console/finance/budget")
    assert yuan(before["funded_fen"]) in page and yuan(before["remaining_fen"]) in page

    for typed in ("12.345", "-5", "1e3", "0"):
        with nothing_changes(app):
            r = ks.post("/console/finance/budget", {"amount": typed, "fiscal_year": str(year), "reference": "X"},
                        from_page="/console/finance/budget")
        assert r.status_code == 422 and 'class="field invalid"' in r.get_data(as_text=True), typed
    with nothing_changes(app):
        r = ks.post("/console/finance/budget", {"amount": "100", "fiscal_year": str(year - 1), "reference": "X"},
                    from_page="/console/finance/budget")
    assert r.status_code == 409 and "fiscal year not current" in r.get_data(as_text=True)
    assert f'value="{year - 1}"' in r.get_data(as_text=True)

    r = ks.post("/console/finance/budget", {"amount": "¥1,234.56", "fiscal_year": str(year),
                                            "reference": "KS-FIN-2026-07"}, from_page="/console/finance/budget")
    assert r.status_code == 303
    after = {y["fiscal_year"]: y for y in ok(ks_api.get("/regions/KS/budget"))["years"]}[year]
    assert after["funded_fen"] - before["funded_fen"] == 123_456
    page = ks.page(r.headers["Location"])
    assert "The budget was funded" in page and yuan(after["funded_fen"]) in page and "KS-FIN-2026-07" in page


@pytest.fixture(scope="module")
def wj_settled_at_sh(actors):
    """A WJ voucher redeemed at an SH provider, in a WJ batch executed through the API."""
    redeem(actors, WJ_ENTERPRISE, SH_PROVIDER, 77_701)
    creator = actors.finance("WJ")
    batch = ok(creator.post("/settlements", json={"period": current_month()}), 201)
    ok(actors.finance("WJ").post(f"/settlements/{batch['id']}/approve"))
    ok(actors.finance("SH").post(f"/settlements/{batch['id']}/approve"))
    assert ok(creator.post(f"/settlements/{batch['id']}/execute"))["status"] == "executed"
    return batch


def test_the_charts_tables_carry_the_reports_figures_to_the_fen(app, actors, ks_redemptions, wj_settled_at_sh):
    ks, ks_api = finance_console(app, actors, "KS")
    month = current_month()
    page = ks.page(f"/console/finance/charts?from={month}&to={month}")
    report = ok(actors.anonymous().get(f"/reports/programme?from={month}&to={month}"))
    assert report["totals"]["settled_fen"] > 0 and report["totals"]["cross_region_redeemed_fen"] > 0
    by_issuer: dict[str, int] = {}
    by_pair: dict[tuple[str, str], int] = {}
    for row in report["rows"]:
        by_issuer[row["issuing_region"]] = by_issuer.get(row["issuing_region"], 0) + row["redeemed_fen"]
        if row["provider_region"]:
            pair = (row["issuing_region"], row["provider_region"])
            by_pair[pair] = by_pair.get(pair, 0) + row["redeemed_fen"]
    assert by_pair[("WJ", "SH")] >= 77_701 and by_pair[("KS", "SH")] >= TO_SH_FEN
    for issuer, redeemed_fen in by_issuer.items():
        if redeemed_fen:
            assert cell(page, f'data-month="{month}"', f'data-region="{issuer}"') == yuan(redeemed_fen)
    assert cell(page, f'data-month="{month}"', "data-total") == yuan(report["totals"]["redeemed_fen"])
    for (issuer, receiver), redeemed_fen in by_pair.items():
        assert cell(page, f'data-issuer="{issuer}"', f'data-provider-region="{receiver}"') == yuan(redeemed_fen)
    cross = {}
    for row in report["rows"]:
        cross[row["issuing_region"]] = cross.get(row["issuing_region"], 0) + row["cross_region_redeemed_fen"]
    assert cell(page, 'data-issuer="WJ"', "data-cross-region") == yuan(cross["WJ"])

    # Budget use: KS's own years, as GET /regions/KS/budget has them; others' the API keeps from finance.
    for year in ok(ks_api.get("/regions/KS/budget"))["years"]:
        row = re.search(rf'<tr data-year="{year["fiscal_year"]}">(.*?)</tr>', page, re.S).group(1)
        assert [yuan(year[k]) for k in ("carried_over_fen", "funded_fen", "granted_fen", "returned_fen",
                                        "remaining_fen")] == re.findall(r'<td class="num">([^<]*)</td>', row)
    assert 'id="table-budget-KS"' in page and 'id="table-budget-SH"' not in page

    # The charts' data and their scripts: a JSON block and files of this origin, no inline code.
    assert '<script type="application/json" id="finance-chart-data">' in page
    assert 'src="/console/static/console/vendor/chart.umd.min.js"' in page
    assert not re.search(r"<script(?![^>]*(src=|application/json))[^>]*>", page), "an inline script"
    assert " style=" not in page and " onclick=" not in page
    script = ks.get("/console/static/console/vendor/chart.umd.min.js")
    assert script.status_code == 200 and b"Chart.js v4" in script.get_data()
    script.close()


def test_the_charts_filter_is_checked_by_the_api(app, actors):
    ks, _ = finance_console(app, actors, "KS")
    r = ks.get("/console/finance/charts?from=2026-13")
    assert r.status_code == 422 and 'role="alert"' in r.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/console/finance/batches", "/console/finance/charts", "/console/finance/budget"])
def test_other_roles_are_sent_to_their_own_pages(app, actors, path):
    sme = Console(app, actors.token("sme", enterprise_id=KS_ENTERPRISE))
    r = sme.get(path)
    assert r.status_code == 302 and r.headers["Location"] == "/console/"


def test_finance_cannot_open_the_auditors_pages(app, actors):
    ks, _ = finance_console(app, actors, "KS")
    r = ks.get("/console/ledger")
    assert r.status_code == 302 and r.headers["Location"] == "/console/"
