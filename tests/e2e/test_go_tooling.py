"""End to end: stock Go tooling verifies the ledger unchanged (DESIGN.md §4).

A real gunicorn server on a fresh database; the Go program in go/checktlog
opens its checkpoint with golang.org/x/mod/sumdb/note, recomputes the root of
its export with golang.org/x/mod/sumdb/tlog and checks the served inclusion
and consistency proofs with tlog.CheckRecord and tlog.CheckTree.

Needs the `go` command (skipped without it; .ci/run installs it from Debian's
packages, with Debian's golang-golang-x-mod-dev, which ships x/mod's source:
the build then uses that source and needs no network).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from helpers import add_evidence_over_http
from helpers import wait_for_checkpoint
from server import gunicorn_server as server  # noqa: F401 (the module's fixture)
from voucher_service.cli.client import ApiClient
from voucher_service.ledger import SigningKey
from voucher_service.ledger.cosignature import cosign


GO = shutil.which("go")
if GO is None:
    pytest.skip("the `go` command is not installed: the stock Go tooling check (golang.org/x/mod/sumdb/note "
                "and sumdb/tlog) cannot run; `apt-get install golang-go golang-golang-x-mod-dev` "
                "(as .ci/run does) enables it", allow_module_level=True)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKTLOG_SRC = os.path.join(REPO, "tests", "e2e", "go", "checktlog")
# Debian's golang-golang-x-mod-dev: the source of golang.org/x/mod, as a module.
DEBIAN_X_MOD = "/usr/share/gocode/src/golang.org/x/mod"
BIN = os.path.dirname(sys.executable)
VOUCHERS = os.path.join(BIN, "vouchers")
COMMAND_TIMEOUT_S = 120
GO_BUILD_TIMEOUT_S = 300
CHECK_TIMEOUT_S = 120
HTTP_TIMEOUT_S = 30


# --------------------------------------------------------------------------- the Go program

def _debian_x_mod() -> str | None:
    try:
        with open(os.path.join(DEBIAN_X_MOD, "go.mod"), encoding="utf-8") as go_mod:
            first = go_mod.readline().strip()
    except OSError:
        return None
    return DEBIAN_X_MOD if first == "module golang.org/x/mod" else None


@pytest.fixture(scope="module")
def checktlog(tmp_path_factory) -> str:
    """The Go program, built once from a copy of its module (the build never touches the repo)."""
    tmp = tmp_path_factory.mktemp("go")
    src = tmp / "checktlog"
    shutil.copytree(CHECKTLOG_SRC, src)
    env = {name: value for name, value in os.environ.items() if not name.startswith("GO")}
    env.update({"GOFLAGS": "-mod=mod", "GOCACHE": str(tmp / "cache"), "GOMODCACHE": str(tmp / "modcache"),
                "GOPATH": str(tmp / "gopath"), "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"})
    local = _debian_x_mod()
    if local:
        # The same module version from Debian's package: no network needed.
        edit = subprocess.run([GO, "mod", "edit", f"-replace=golang.org/x/mod={local}"], cwd=src, env=env,
                              capture_output=True, text=True, timeout=GO_BUILD_TIMEOUT_S)
        assert edit.returncode == 0, edit.stdout + edit.stderr
        env["GOPROXY"] = "off"
    binary = tmp / "checktlog-bin"
    try:
        build = subprocess.run([GO, "build", "-o", str(binary), "."], cwd=src, env=env, capture_output=True,
                               text=True, timeout=GO_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"go build of the checker did not finish within {GO_BUILD_TIMEOUT_S} s")
    assert build.returncode == 0, (
        f"go build failed ({'Debian x/mod at ' + local if local else 'x/mod from the module proxy'}):\n"
        + build.stdout + build.stderr)
    return str(binary)


def _check(binary: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)


# --------------------------------------------------------------------------- the server (as in test_demo.py)


def _token(env: dict, *args: str) -> str:
    result = subprocess.run([VOUCHERS, "token", "create", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def _post(client: ApiClient, path: str, token: str, body: dict | None = None, expected: int = 200) -> dict:
    reply = client.api("POST", path, token, body, idempotency_key=uuid.uuid4().hex)
    assert reply.status == expected, f"POST {path}: {reply.status} {reply.raw[:500]!r}"
    return reply.json


def _get(client: ApiClient, path: str, token: str | None = None) -> bytes:
    reply = client.api("GET", path, token)
    assert reply.status == 200, f"GET {path}: {reply.status} {reply.raw[:500]!r}"
    return reply.raw


def _lifecycle(client: ApiClient, tokens: dict, n: int) -> None:
    """One voucher's life: 8 ledger entries (submitted, issued, reserved, two documents added, claimed,
    confirmed, redeemed)."""
    application = _post(client, "/applications", tokens["sme"],
                        {"amount_fen": 1_000_000, "purpose": f"go tooling e2e {n}"}, expected=201)
    voucher = _post(client, f"/applications/{application['id']}/approve", tokens["officer"], {})["voucher"]
    redemption = _post(client, "/redemptions", tokens["sme"],
                       {"voucher_id": voucher["id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
                        "service_fee_fen": 600_000, "amount_fen": 300_000}, expected=201)
    rid = redemption["id"]
    add_evidence_over_http(client, rid, tokens["provider"])
    _post(client, f"/redemptions/{rid}/claim", tokens["provider"],
          {"invoice_no": f"GO-INV-{n}", "service_fee_fen": 500_000, "amount_fen": 250_000})
    _post(client, f"/redemptions/{rid}/confirm", tokens["sme"])
    _post(client, f"/redemptions/{rid}/approve", tokens["officer"])


def _tree_size(client: ApiClient, auditor: str) -> int:
    return int(client.api("GET", "/ledger/export", auditor).headers["Ledger-Tree-Size"])


def _size(checkpoint: bytes) -> int:
    return int(checkpoint.decode("utf-8").split("\n")[1])


@pytest.fixture(scope="module")
def ledger(server, tmp_path_factory):
    """The server after a few dozen writes, with a checkpoint signed part way (the "old" one)
    and KS's key rotated after it."""
    url, env = server
    client = ApiClient(url, timeout_s=HTTP_TIMEOUT_S)
    tmp = tmp_path_factory.mktemp("ledger")
    tokens = {"sme": _token(env, "--role", "sme", "--enterprise", "ent-ks-003"),
              "officer": _token(env, "--role", "officer", "--region", "KS"),
              "provider": _token(env, "--role", "provider", "--provider", "prv-sh-001"),
              "auditor": _token(env, "--role", "auditor")}
    for n in range(3):
        _lifecycle(client, tokens, n)
    old = wait_for_checkpoint(client, _tree_size(client, tokens["auditor"])).raw
    old_path = tmp / "old-checkpoint.txt"
    old_path.write_bytes(old)
    # Entries before it are signed by KS's retired key, entries after it by its successor.
    rotate = subprocess.run([VOUCHERS, "keys", "rotate", "--region", "KS"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert rotate.returncode == 0, rotate.stdout + rotate.stderr
    for n in range(3, 6):
        _lifecycle(client, tokens, n)
    current = wait_for_checkpoint(client, _tree_size(client, tokens["auditor"])).raw
    assert _size(current) >= _size(old) + 18, (old, current)
    assert _size(current) >= 30
    return {"url": url, "client": client, "auditor": tokens["auditor"], "old_checkpoint": old_path, "tmp": tmp}


def _offline_copies(ledger) -> dict:
    """The keys, a current checkpoint and the export, saved to files."""
    client, tmp = ledger["client"], ledger["tmp"]
    files = {"keys": tmp / "keys.json", "checkpoint": tmp / "checkpoint.txt", "export": tmp / "ledger.jsonl"}
    files["keys"].write_bytes(_get(client, "/ledger/keys"))
    files["checkpoint"].write_bytes(_get(client, "/ledger/checkpoint"))
    files["export"].write_bytes(_get(client, "/ledger/export", ledger["auditor"]))
    return files


def _args(files: dict) -> list[str]:
    return [arg for name, path in files.items() for arg in (f"-{name}", str(path))]


# --------------------------------------------------------------------------- the tests

def test_stock_go_tooling_verifies_checkpoint_export_and_proofs(checktlog, ledger):
    result = _check(checktlog, "-url", ledger["url"], "-token", ledger["auditor"],
                    "-old-checkpoint", str(ledger["old_checkpoint"]))
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: "), result.stdout
    assert "tlog.TreeHash of the export matches" in result.stdout
    assert "verified by tlog.CheckRecord" in result.stdout
    assert "verified by tlog.CheckTree" in result.stdout
    assert "verified by note.Open and tlog.CheckRecord" in result.stdout  # the receipts
    assert "including the old checkpoint" in result.stdout
    for region in ("KS", "SH"):
        assert region in result.stdout
    keys = json.loads(_get(ledger["client"], "/ledger/keys"))["keys"]
    ks = [k for k in keys if k["region"] == "KS"]
    assert len(ks) == 2 and sum(k["valid_until"] is None for k in ks) == 1, ks
    assert ks[0]["note_name"] == ks[1]["note_name"] and ks[0]["note_key"] != ks[1]["note_key"]


def test_url_and_token_may_come_from_the_environment(checktlog, ledger):
    env = {**os.environ, "CHECKTLOG_URL": ledger["url"], "CHECKTLOG_TOKEN": ledger["auditor"]}
    result = subprocess.run([checktlog], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")


def test_saved_copies_verify_offline(checktlog, ledger):
    files = _offline_copies(ledger)
    result = _check(checktlog, *_args(files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ") and "proofs not checked" in result.stdout


def _flip_root_byte(checkpoint: bytes) -> bytes:
    text, _, signatures = checkpoint.decode("utf-8").partition("\n\n")
    origin, size, root = text.split("\n")[:3]
    raw = bytearray(base64.b64decode(root))
    raw[0] ^= 0x01
    tampered = f"{origin}\n{size}\n{base64.b64encode(bytes(raw)).decode('ascii')}\n"
    assert len(tampered) == len(text) + 1
    return (tampered + "\n" + signatures).encode("utf-8")


def test_a_tampered_checkpoint_is_rejected(checktlog, ledger):
    files = _offline_copies(ledger)
    files["checkpoint"].write_bytes(_flip_root_byte(files["checkpoint"].read_bytes()))
    for args in (_args(files), ["-url", ledger["url"], "-token", ledger["auditor"],
                                "-checkpoint", str(files["checkpoint"])]):
        result = _check(checktlog, *args)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "note.Open" in result.stderr and "invalid signature" in result.stderr, result.stderr
        assert not result.stdout.startswith("ok")


def test_a_tampered_export_line_is_rejected(checktlog, ledger):
    files = _offline_copies(ledger)
    lines = files["export"].read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b'"v":1', b'"v":2', 1)
    assert b'"v":2' in lines[5]
    files["export"].write_bytes(b"\n".join(lines))
    result = _check(checktlog, *_args(files))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "root mismatch" in result.stderr, result.stderr


def test_a_checkpoint_without_the_log_signature_is_rejected(checktlog, ledger):
    """Region keys cannot stand in for the log key: an operator holding them all
    cannot sign a checkpoint that stock tooling accepts."""
    files = _offline_copies(ledger)
    checkpoint = files["checkpoint"].read_text(encoding="utf-8")
    keys = json.loads(files["keys"].read_bytes())
    log_key = next(k for k in keys["keys"] if k["purpose"] == "log")
    kept = [line for line in checkpoint.split("\n") if not line.startswith(f"\u2014 {log_key['note_name']} ")]
    assert len(kept) == len(checkpoint.split("\n")) - 1
    files["checkpoint"].write_text("\n".join(kept), encoding="utf-8")
    result = _check(checktlog, *_args(files))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "note.Open with the log key" in result.stderr, result.stderr


def test_a_checkpoint_with_witness_cosignatures_still_opens_with_stock_tooling(checktlog, ledger):
    """Witnesses' cosignature/v1 lines sit beside the log key's signature; Go's
    note.Open leaves signatures of keys it was not given unverified, so the
    log signature of a published, cosigned checkpoint verifies unchanged."""
    files = _offline_copies(ledger)
    note = files["checkpoint"].read_text(encoding="utf-8")
    text = note[:note.index("\n\n") + 1]
    for number in range(3):
        witness = SigningKey.generate(f"w{number}")
        note += cosign(text, f"witness{number}.example/ks", witness.sign, witness.public_key_raw, 1_700_000_000)
    files["checkpoint"].write_text(note, encoding="utf-8")
    result = _check(checktlog, *_args(files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signed by the log key" in result.stdout
