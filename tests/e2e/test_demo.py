"""End to end: a real gunicorn server on a fresh database, driven by `vouchers demo`.

Nothing here uses the Flask test client: the server and the demo are separate
processes talking HTTP, as on a user's machine after `make run`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

from server import free_port, gunicorn_server as server  # noqa: F401 (the module's fixture)


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
VOUCHERS = os.path.join(BIN, "vouchers")
COMMAND_TIMEOUT_S = 120


def _demo(url: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([VOUCHERS, "demo", "--url", url], cwd=REPO, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=COMMAND_TIMEOUT_S)


def _balances(output: str) -> list[tuple[int, int, int, int]]:
    """The (face, available, held, redeemed) fen row printed after each step that has a voucher."""
    return [tuple(int(n) for n in match.groups())
            for match in re.finditer(r"^\s+fen\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", output, re.MULTILINE)]


def _step(output: str, number: int) -> str:
    match = re.search(rf"^\s*{number}\. .*$", output, re.MULTILINE)
    assert match, f"no step {number} in:\n{output}"
    return match.group(0)


def test_demo_drives_the_whole_lifecycle(server):
    url, env = server
    result = _demo(url, env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    # Who and what, with the Chinese names as they are.
    assert "昆山阳澄湖智能装备制造有限公司" in out
    assert "上海市计量测试技术研究院" in out

    # Each step's status and outcome.
    assert "201 Created" in _step(out, 1) and "submitted" in _step(out, 1)
    assert "200 OK" in _step(out, 2) and "voucher KS-" in _step(out, 2)
    assert "201 Created" in _step(out, 3) and "reserved" in _step(out, 3)
    replay = _step(out, 4)
    first_id = re.search(r"redemption (rdm_\w+) reserved", _step(out, 3)).group(1)
    assert "201 Created" in replay and f"same redemption {first_id}" in replay
    assert "Idempotent-Replayed: true" in replay
    over_ratio = _step(out, 5)
    assert "409 Conflict" in over_ratio and "subsidy ratio" in over_ratio
    assert "[urn:vouchers:problem:subsidy_ratio]" in over_ratio
    # The evidence a claim needs: a contract and an invoice, stored by their SHA-256.
    assert "201 Created" in _step(out, 6) and "contract sha256 " in _step(out, 6)
    assert "201 Created" in _step(out, 7) and "invoice sha256 " in _step(out, 7)
    assert "200 OK" in _step(out, 8) and "claimed" in _step(out, 8)
    assert "200 OK" in _step(out, 9) and "confirmed" in _step(out, 9)
    wrong_region = _step(out, 10)
    assert "403 Forbidden" in wrong_region and "issuing region (KS)" in wrong_region
    assert "200 OK" in _step(out, 11) and "redeemed: 5,000.00 CNY payable by KS to prv-sh-001" in _step(out, 11)
    assert "201 Created" in _step(out, 12)
    assert "200 OK" in _step(out, 13) and "cancelled" in _step(out, 13)

    # The voucher's balances after every step from the issue on (step 1 has no voucher yet).
    assert _balances(out) == [
        (2_000_000, 2_000_000, 0, 0),            # 2 issued
        (2_000_000, 1_400_000, 600_000, 0),      # 3 reserved 600,000
        (2_000_000, 1_400_000, 600_000, 0),      # 4 replay: no second hold
        (2_000_000, 1_400_000, 600_000, 0),      # 5 refused: nothing changes
        (2_000_000, 1_400_000, 600_000, 0),      # 6 contract uploaded
        (2_000_000, 1_400_000, 600_000, 0),      # 7 invoice uploaded
        (2_000_000, 1_500_000, 500_000, 0),      # 8 claim lowered to 500,000: 100,000 released
        (2_000_000, 1_500_000, 500_000, 0),      # 9 confirmed
        (2_000_000, 1_500_000, 500_000, 0),      # 10 refused
        (2_000_000, 1_500_000, 0, 500_000),      # 11 redeemed
        (2_000_000, 1_300_000, 200_000, 500_000),  # 12 second reservation
        (2_000_000, 1_500_000, 0, 500_000),      # 13 cancelled: hold released
    ]
    assert ("face 20,000.00 = available 15,000.00 + held 0.00 + redeemed 5,000.00 CNY "
            "(2000000 = 1500000 + 0 + 500000 fen)") in out
    assert re.search(r"redemption rdm_\w+\s+redeemed\s+5,000\.00 CNY payable by KS to prv-sh-001", out)
    assert re.search(r"redemption rdm_\w+\s+cancelled\s+hold of 2,000\.00 CNY released", out)

    # One signed entry per change, none for the replay and the refusals, with exactly these postings.
    voucher_id = re.search(r"\((vch_\w+)\)", _step(out, 2)).group(1)
    entries = _ledger_entries(out, voucher_id)
    held, available, payable = "voucher:V:held", "voucher:V", "payable:KS:prv-sh-001"
    assert [(kind, region, postings) for _seq, kind, region, _leaf, postings in entries] == [
        ("application.submitted", "KS", []),
        ("voucher.issued", "KS", [(2_000_000, "budget:KS", available)]),
        ("redemption.reserved", "KS", [(600_000, available, held)]),
        ("redemption.document_added", "KS", []),
        ("redemption.document_added", "KS", []),
        ("redemption.claimed", "KS", [(100_000, held, available)]),
        ("redemption.confirmed", "KS", []),
        ("redemption.redeemed", "KS", [(500_000, held, payable)]),
        ("redemption.reserved", "KS", [(200_000, available, held)]),
        ("redemption.cancelled", "KS", [(200_000, held, available)]),
    ]
    seqs = [seq for seq, *_rest in entries]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert len({leaf for _seq, _kind, _region, leaf, _postings in entries}) == len(entries)
    assert out.count("no entry: a refused request changes nothing") == 2
    assert "no entry: a replay repeats the first answer and changes nothing" in out
    assert ("replaying the ledger gives 1500000 fen available and 0 fen held: it agrees with the voucher"
            in out)


def _ledger_entries(output: str, voucher_id: str) -> list:
    """(seq, kind, region, leaf, [(amount, source, destination)]) per printed entry; the voucher's id is V."""
    entries = []
    for line in output.splitlines():
        entry = re.match(r"^\s+ledger\s+seq (\d+)\s+(\S+)\s+region (\S+)\s+leaf ([0-9a-f]{16})$", line)
        posting = re.match(r"^\s+(\d+) fen  (\S+) → (\S+)$", line)
        if entry:
            seq, kind, region, leaf = entry.groups()
            entries.append((int(seq), kind, region, leaf, []))
        elif posting and entries:
            amount, source, destination = posting.groups()
            entries[-1][4].append((int(amount), source.replace(voucher_id, "V"), destination.replace(voucher_id, "V")))
    return entries


def test_demo_can_run_again_on_the_same_server(server):
    url, env = server
    result = _demo(url, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(2000000 = 1500000 + 0 + 500000 fen)" in result.stdout


def test_demo_fails_clearly_when_the_server_is_unreachable(server):
    _url, env = server
    result = _demo(f"http://127.0.0.1:{free_port()}", env)
    assert result.returncode != 0
    assert "cannot reach the server" in result.stderr


def _token(env: dict, *args: str) -> str:
    done = subprocess.run([VOUCHERS, "token", "create", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _call(url: str, method: str, path: str, token: str, body: dict | None = None) -> dict:
    import json
    import urllib.request
    request = urllib.request.Request(f"{url}/api/v1{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT_S) as reply:
        return json.loads(reply.read())


def test_demo_runs_after_the_catalogue_lowers_the_ratio(server):
    """The README's catalogue walkthrough lowers TS-01 to 40%; the demo after it
    spends at the ratio in effect instead of failing its first reservation."""
    url, env = server
    officers = {region: _token(env, "--role", "officer", "--region", region) for region in ("SH", "KS", "WJ")}
    proposal = _call(url, "PATCH", "/catalog/TS-01", officers["SH"], {"max_subsidy_ratio_bp": 4000})
    for region in ("KS", "WJ"):
        _call(url, "POST", f"/catalog/proposals/{proposal['id']}/approve", officers[region], {})
    assert _call(url, "GET", "/catalog/TS-01", officers["KS"])["max_subsidy_ratio_bp"] == 4000

    result = _demo(url, env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "40% in effect for KS" in out
    assert "201 Created" in _step(out, 3) and "SME reserves 4,800.00 of a 12,000.00 CNY service" in _step(out, 3)
    assert "409 Conflict" in _step(out, 5) and "(50%)" in _step(out, 5)
    assert "200 OK" in _step(out, 11) and "redeemed: 4,000.00 CNY payable by KS to prv-sh-001" in _step(out, 11)
    assert "(2000000 = 1600000 + 0 + 400000 fen)" in out
