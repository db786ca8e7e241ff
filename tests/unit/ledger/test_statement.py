"""The offline statement verifier against statements signed in memory: no
database, no Flask. A good statement verifies; a bad signature, a key of
another region, a key retired before the statement, failed checks and any
malformed input are each a StatementError with a clear message, never
another exception."""
from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voucher_service.ledger import SigningKey, canonical_bytes
from voucher_service.ledger.note import verifier_key
from voucher_service.ledger.statement import (
    StatementChecksFailed,
    StatementError,
    main,
    sign_statement,
    unsigned_bytes,
    verify_statement,
)

ORIGIN = "vouchers.test/ledger"
T0 = "2026-01-01T00:00:00.000000Z"
ROTATED = "2026-02-01T00:00:00.000000Z"
GENERATED = "2026-03-02T08:00:00.000000Z"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


KS_OLD, KS_NEW, SH = SigningKey.generate("KS"), SigningKey.generate("KS"), SigningKey.generate("SH")


def key_record(key: SigningKey, region: str, valid_from: str, valid_until: str | None) -> dict:
    name = f"{ORIGIN}/{region}"
    return {"key_id": key.key_id, "region": region, "alg": "ed25519", "public_key": b64(key.public_key_raw),
            "note_name": name, "note_key": verifier_key(name, key.public_key_raw), "valid_from": valid_from,
            "valid_until": valid_until}


def keys_json() -> dict:
    return {"origin": ORIGIN, "keys": [key_record(KS_OLD, "KS", T0, ROTATED), key_record(KS_NEW, "KS", ROTATED, None),
                                       key_record(SH, "SH", T0, None)]}


def check(name: str, expected: int, actual: int) -> dict:
    return {"name": name, "ok": expected == actual, "expected": expected, "actual": actual,
            "detail": f"{name}: what it compares"}


def unsigned(region: str = "KS", generated_at: str = GENERATED, checks=None) -> dict:
    return {
        "region": region, "period": "2026-02", "period_start": "2026-01-31T16:00:00.000000Z",
        "period_end": "2026-02-28T16:00:00.000000Z", "generated_at": generated_at,
        "totals": {"issued_fen": 1_500_000, "redeemed_fen": 430_000,
                   "as_of_end": {"budget_fen": 1_999_000_000, "payable_fen": 430_000}},
        "outstanding_liability_fen": 430_000,
        "positions": {"gross": [{"from": region, "to": "SH", "amount_fen": 250_000}],
                      "net": [{"from": region, "to": "SH", "amount_fen": 250_000}], "net_fen": -250_000},
        "checks": checks if checks is not None else [check("accounts_replay_vs_stored", 0, 0),
                                                     check("budget_replay_vs_stored", 1_999_000_000, 1_999_000_000)],
        "ledger": {"tree_size": 120, "root": b64(bytes(range(32)))},
    }


def signed(key: SigningKey = KS_NEW, **kw) -> dict:
    return sign_statement(unsigned(**kw), key)


def test_a_good_statement_verifies():
    statement = signed()
    summary = verify_statement(statement, keys_json())
    assert summary == (f"ok: reconciliation statement for KS 2026-02 signed by key {KS_NEW.key_id} "
                       f"(valid at {GENERATED}), ledger tree size 120, all 2 checks ok")
    assert statement["signature"]["alg"] == "ed25519"
    # The message is RFC 8785 of everything but the signature: key order and spacing do not matter.
    assert unsigned_bytes(statement) == canonical_bytes(unsigned())
    reordered = json.loads(json.dumps(statement, indent=3, sort_keys=True))
    assert verify_statement(reordered, keys_json()) == summary


def test_a_statement_signed_before_a_rotation_verifies_with_the_retired_key():
    statement = signed(KS_OLD, generated_at="2026-01-15T00:00:00.000000Z")
    assert KS_OLD.key_id in verify_statement(statement, keys_json())


@pytest.mark.parametrize("edit", [
    lambda s: s["totals"].update(redeemed_fen=430_001),
    lambda s: s["positions"]["net"][0].update(to="WJ"),
    lambda s: s.update(period="2026-03"),
    lambda s: s["checks"][0].update(detail="something else"),
    lambda s: s.update(extra="added after signing"),
    lambda s: s["ledger"].update(root=b64(bytes(32))),
], ids=["total", "position", "period", "check-detail", "added-field", "root"])
def test_any_change_breaks_the_signature(edit):
    statement = signed()
    edit(statement)
    with pytest.raises(StatementError, match="does not verify: the statement was changed") as raised:
        verify_statement(statement, keys_json())
    assert not isinstance(raised.value, StatementChecksFailed)


def test_a_signature_by_another_key_of_the_region_does_not_verify():
    statement = signed(KS_NEW)
    statement["signature"]["value"] = signed(SH)["signature"]["value"]
    with pytest.raises(StatementError, match="does not verify"):
        verify_statement(statement, keys_json())


def test_a_key_of_another_region_is_refused():
    statement = signed(SH, region="KS")
    with pytest.raises(StatementError, match=f"for region KS but signed by key {SH.key_id} of region SH"):
        verify_statement(statement, keys_json())


def test_a_retired_key_cannot_sign_after_its_valid_until():
    statement = signed(KS_OLD)  # generated in March, the key retired on 1 February
    with pytest.raises(StatementError, match=f"generated at {GENERATED} but key {KS_OLD.key_id} is valid from "
                                             f"{T0} until {ROTATED}"):
        verify_statement(statement, keys_json())
    before_the_key = signed(KS_NEW, generated_at="2026-01-15T00:00:00.000000Z")
    with pytest.raises(StatementError, match="valid from"):
        verify_statement(before_the_key, keys_json())


def test_an_unpublished_key_is_refused():
    with pytest.raises(StatementError, match="not published"):
        verify_statement(signed(SigningKey.generate("KS")), keys_json())


def test_failed_checks_are_reported_on_a_validly_signed_statement():
    checks = [check("accounts_replay_vs_stored", 0, 1), check("budget_replay_vs_stored", 100, 101),
              check("balances_sum_to_zero", 0, 0)]
    statement = signed(checks=checks)
    with pytest.raises(StatementChecksFailed) as raised:
        verify_statement(statement, keys_json())
    message = str(raised.value)
    assert message.startswith(f"the statement for KS 2026-02 is validly signed by key {KS_NEW.key_id}, "
                              f"but 2 of its 3 checks failed: ")
    assert "accounts_replay_vs_stored (expected 0, actual 1): accounts_replay_vs_stored: what it compares" in message
    assert "budget_replay_vs_stored (expected 100, actual 101)" in message
    assert "balances_sum_to_zero" not in message
    assert [c["name"] for c in raised.value.failed] == ["accounts_replay_vs_stored", "budget_replay_vs_stored"]
    assert isinstance(raised.value, StatementError) and isinstance(raised.value, ValueError)


def test_a_check_marked_ok_whose_figures_differ_is_reported():
    checks = [{"name": "payable_vs_unsettled_redemptions", "ok": True, "expected": 5, "actual": 6}]
    with pytest.raises(StatementChecksFailed, match="marked ok but expected and actual differ"):
        verify_statement(signed(checks=checks), keys_json())


MALFORMED = {
    "not-an-object": lambda s: [s],
    "missing-signature": lambda s: {k: v for k, v in s.items() if k != "signature"},
    "missing-checks": lambda s: {k: v for k, v in s.items() if k != "checks"},
    "region-not-string": lambda s: {**s, "region": 7},
    "bad-generated-at": lambda s: {**s, "generated_at": "yesterday"},
    "impossible-date": lambda s: {**s, "generated_at": "2026-02-30T00:00:00.000000Z"},
    "signature-not-object": lambda s: {**s, "signature": "abc"},
    "signature-extra-field": lambda s: {**s, "signature": {**s["signature"], "x": 1}},
    "wrong-alg": lambda s: {**s, "signature": {**s["signature"], "alg": "rsa"}},
    "key-id-not-string": lambda s: {**s, "signature": {**s["signature"], "key_id": None}},
    "value-not-base64": lambda s: {**s, "signature": {**s["signature"], "value": "@@@"}},
    "value-short": lambda s: {**s, "signature": {**s["signature"], "value": b64(b"x" * 10)}},
    "value-unpadded": lambda s: {**s, "signature": {**s["signature"], "value": s["signature"]["value"].rstrip("=")}},
    "value-number": lambda s: {**s, "signature": {**s["signature"], "value": 12}},
    "float-amount": lambda s: {**s, "totals": {**s["totals"], "issued_fen": 1.5}},
    "huge-integer": lambda s: {**s, "outstanding_liability_fen": 2**60},
    "checks-empty": lambda s: {**s, "checks": []},
    "checks-not-list": lambda s: {**s, "checks": {"a": 1}},
    "check-without-ok": lambda s: {**s, "checks": [{"name": "x"}]},
    "check-ok-not-bool": lambda s: {**s, "checks": [{"name": "x", "ok": "yes"}]},
    "ledger-not-object": lambda s: {**s, "ledger": 5},
    "ledger-negative-size": lambda s: {**s, "ledger": {"tree_size": -1, "root": s["ledger"]["root"]}},
    "ledger-bad-root": lambda s: {**s, "ledger": {"tree_size": 1, "root": "short"}},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_statements_are_statement_errors(name):
    statement = MALFORMED[name](copy.deepcopy(signed()))
    with pytest.raises(StatementError):
        verify_statement(statement, keys_json())


@pytest.mark.parametrize("keys", [None, [], {"origin": ORIGIN}, {"origin": ORIGIN, "keys": []},
                                  {"origin": ORIGIN, "keys": [{"key_id": "KS-1"}]}, "keys"])
def test_malformed_keys_are_statement_errors(keys):
    with pytest.raises(StatementError, match="keys"):
        verify_statement(signed(), keys)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=True),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                                     max_size=4),
                    max_leaves=20))
def test_garbage_is_a_statement_error(garbage):
    for statement in (garbage, {**signed(), "totals": garbage}, {**signed(), "checks": garbage},
                      {**signed(), "signature": garbage}):
        try:
            verify_statement(statement, keys_json())
        except StatementError:
            pass


def test_sign_statement_refuses_a_signed_statement():
    with pytest.raises(ValueError):
        sign_statement(signed(), KS_NEW)


def write(tmp_path, name, content) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode("utf-8"))
    return str(path)


def test_command_line(tmp_path, capsys):
    keys = write(tmp_path, "keys.json", keys_json())
    good = write(tmp_path, "good.json", signed())
    assert main([good, "--keys", keys]) == 0
    assert capsys.readouterr().out.startswith("ok: reconciliation statement for KS")
    failing = write(tmp_path, "failing.json", signed(checks=[check("voucher_identity", 0, 2)]))
    assert main([failing, "--keys", keys]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAILED: ") and "voucher_identity (expected 0, actual 2)" in err
    for content in (b"", b"{", b"\xff", b"[" * 50_000 + b"]" * 50_000, b'"text"'):
        assert main([write(tmp_path, "bad.json", content), "--keys", keys]) == 1
        assert capsys.readouterr().err.startswith("FAILED: ")
    assert main([str(tmp_path / "missing.json"), "--keys", keys]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main([good, "--keys", write(tmp_path, "bad-keys.json", b"{}")]) == 1


def test_runs_as_a_module_without_the_service(tmp_path):
    """`python -m voucher_service.ledger.statement` with the service's own
    dependencies (Flask, SQLAlchemy) unimportable."""
    keys = write(tmp_path, "keys.json", keys_json())
    good = write(tmp_path, "good.json", signed())
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for module in ("flask", "sqlalchemy", "sqlmodel", "marshmallow"):
        (blocker / f"{module}.py").write_text("raise ImportError('not available offline')\n")
    env_path = f"{blocker}"
    result = subprocess.run([sys.executable, "-c",
                             f"import sys; sys.path.insert(0, {env_path!r}); "
                             "from voucher_service.ledger.statement import main; "
                             f"sys.exit(main([{good!r}, '--keys', {keys!r}]))"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: reconciliation statement for KS")
