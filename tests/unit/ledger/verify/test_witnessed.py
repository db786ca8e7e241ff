"""The trust model after the upgrade to witnessed checkpoints (DESIGN §10):
which keys must sign a checkpoint, given the entries it covers, and --policy
on `verify` and `verify-receipt`, against logs signed with real keys.

The standard log's entries are at ts(1)..ts(8); the log key, and so the
upgrade, is of ts(5): a checkpoint of 4 entries covers only older ones.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from test_verify import ORIGIN, Log, b64, standard_log, ts

from voucher_service.cli.verify import verify_command, verify_receipt_command
from voucher_service.ledger import SigningKey
from voucher_service.ledger.cosignature import add_signature_lines, cosign, vkey
from voucher_service.ledger.note import Checkpoint, sign_note, verifier_key
from voucher_service.ledger.policy import Policy
from voucher_service.ledger.verify import (
    VerificationError,
    load_keys,
    main,
    receipt_text,
    verify_export,
    verify_export_files,
    verify_receipt,
)

UPGRADED_AT = ts(5)
WITNESSES = ("sh", "ks", "wj")


class WitnessedLog(Log):
    """The standard log, its deployment upgraded to witnessed checkpoints at UPGRADED_AT."""

    def __init__(self):
        super().__init__()
        source = standard_log()
        self.lines, self.regions = source.lines, source.regions
        self.log_keys = [[SigningKey.generate("log"), UPGRADED_AT, None]]
        self.witnesses = {name: SigningKey.generate(f"witness.{name}.test") for name in WITNESSES}

    def keys_json(self) -> dict:
        document = super().keys_json()
        for record in document["keys"]:
            record["purpose"] = "entry"
        for key, start, end in self.log_keys:
            document["keys"].append({"key_id": key.key_id, "region": None, "alg": "ed25519",
                                     "public_key": b64(key.public_key_raw), "note_name": ORIGIN,
                                     "note_key": verifier_key(ORIGIN, key.public_key_raw), "valid_from": start,
                                     "valid_until": end, "purpose": "log"})
        return document

    def log_signer(self, number: int = -1):
        key = self.log_keys[number][0]
        return (ORIGIN, key.sign, key.public_key_raw)

    def region_signers(self):
        return [region.signer() for region in self.regions.values()]

    def witnessed(self, size: int | None = None, *names: str, signers=None) -> str:
        """A checkpoint signed by the log key (or `signers`), cosigned by the named witnesses."""
        note = self.checkpoint(size, signers=signers or [self.log_signer()])
        text = note[:note.index("\n\n") + 1]
        for name in names:
            key = self.witnesses[name]
            note = add_signature_lines(note, cosign(text, key.key_id, key.sign, key.public_key_raw, 1_780_000_000))
        return note

    def policy_text(self, quorum_body: str = "group regions all sh ks wj\nquorum regions\n") -> str:
        lines = [f"log {verifier_key(ORIGIN, self.log_keys[0][0].public_key_raw)}"]
        lines += [f"witness {name} {vkey(key.key_id, key.public_key_raw)}" for name, key in self.witnesses.items()]
        return "\n".join(lines) + "\n" + quorum_body

    def policy(self, quorum_body: str = "group regions all sh ks wj\nquorum regions\n") -> Policy:
        return Policy.parse(self.policy_text(quorum_body))

    def receipt_with(self, seq: int, note: str) -> dict:
        size = Checkpoint.parse(note[:note.index("\n\n") + 1]).size
        receipt = self.receipt(seq, size)
        receipt["checkpoint"] = note
        receipt["tlog_proof"] = receipt["tlog_proof"].split("\n\n", 1)[0] + "\n\n" + note
        return receipt


@pytest.fixture(scope="module")
def log():
    return WitnessedLog()


def rejected(log, note, previous=None, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_export(log.export(), note, log.keys(), previous, **kwargs)
    return info.value


# --- which keys must sign ------------------------------------------------------------------------

def test_the_upgrade_is_when_the_log_key_was_made(log):
    assert log.keys().upgraded_at == UPGRADED_AT
    assert Log().keys().upgraded_at is None  # no log key: a legacy deployment


def test_a_legacy_checkpoint_still_verifies_after_the_upgrade(log):
    summary = verify_export(log.export(), log.checkpoint(4, signers=log.region_signers()), log.keys())
    assert (summary.checkpoint_size, summary.cosigned_by, summary.log_key) == (4, ("KS", "SH"), None)
    assert "cosigned by KS, SH" in summary.text() and "log key" not in summary.text()


@pytest.mark.parametrize("size", [5, 8])
def test_a_region_only_checkpoint_after_the_upgrade_fails(log, size):
    """The attack: the operator holds every region key, so with them alone it could sign a fork."""
    error = rejected(log, log.checkpoint(size, signers=log.region_signers()))
    assert error.where == "checkpoint" and "not signed by the log key" in error.why
    assert UPGRADED_AT in error.why and "KS, SH" in error.why


def test_a_log_signed_checkpoint_passes_and_says_so(log):
    summary = verify_export(log.export(), log.witnessed(8, "sh", "ks"), log.keys())
    assert summary.log_key == log.log_keys[0][0].key_id and summary.cosigned_by == () and summary.witnesses is None
    assert f"signed by the log key {summary.log_key}" in summary.text() and "cosigned" not in summary.text()


def test_the_log_key_may_sign_a_checkpoint_of_older_entries_alone_or_with_the_regions(log):
    alone = verify_export(log.export(), log.witnessed(4), log.keys())
    assert alone.log_key and alone.cosigned_by == ()
    both = verify_export(log.export(), log.checkpoint(4, signers=[log.log_signer()] + log.region_signers()),
                         log.keys())
    assert f"signed by the log key {both.log_key} and by regions KS, SH" in both.text()
    # The last legacy checkpoint signed by both keeps verifying once the log grew past the upgrade.
    one_region = verify_export(log.export(), log.checkpoint(4, signers=[log.log_signer(),
                                                                       log.regions["KS"].signer()]), log.keys())
    assert one_region.cosigned_by == ("KS",)


def test_an_invalid_log_key_signature_fails_even_beside_good_region_signatures(log):
    good = log.checkpoint(8, signers=[log.log_signer()] + log.region_signers())
    other = log.checkpoint(7, signers=[log.log_signer()])
    log_line = other.split("\n\n", 1)[1]
    forged = good.split("\n\n", 1)[0] + "\n\n" + log_line + "".join(
        line + "\n" for line in good.split("\n\n", 1)[1].splitlines() if not line.startswith(f"\u2014 {ORIGIN} "))
    error = rejected(log, forged)
    assert error.where == "checkpoint" and f"signature by {ORIGIN} (key log-" in error.why
    assert "does not verify" in error.why


def test_a_log_key_retired_before_the_newest_entry_fails_and_its_successor_passes():
    log = WitnessedLog()
    log.log_keys[0][2] = ts(7)
    log.log_keys.append([SigningKey.generate("log"), ts(7), None])
    assert log.keys().upgraded_at == UPGRADED_AT  # the first log key's time
    error = rejected(log, log.witnessed(8, signers=[log.log_signer(0)]))
    assert "retired" in error.why and "of the log" in error.why
    assert verify_export(log.export(), log.witnessed(8, signers=[log.log_signer(1)]), log.keys()).log_key == \
        log.log_keys[1][0].key_id
    assert verify_export(log.export(), log.witnessed(6, signers=[log.log_signer(0)]), log.keys()).log_key


def test_previous_checkpoints_follow_the_same_rule(log):
    legacy_previous = log.checkpoint(4, signers=log.region_signers())
    summary = verify_export(log.export(), log.witnessed(8), log.keys(), legacy_previous)
    assert summary.previous_size == 4
    error = rejected(log, log.witnessed(8), log.checkpoint(6, signers=log.region_signers()))
    assert error.where == "previous checkpoint" and "not signed by the log key" in error.why


def test_a_keys_document_with_purposes_but_no_log_key_is_legacy(log):
    legacy = Log()
    legacy.lines, legacy.regions = log.lines, log.regions
    document = legacy.keys_json()
    for record in document["keys"]:
        record["purpose"] = "entry"
    keys = load_keys(document)
    assert keys.upgraded_at is None
    assert verify_export(log.export(), log.checkpoint(8, signers=log.region_signers()), keys).cosigned_by == \
        ("KS", "SH")
    with pytest.raises(VerificationError, match="not cosigned by region SH"):
        verify_export(log.export(), log.checkpoint(8, signers=[log.regions["KS"].signer()]), keys)


def test_witness_cosignatures_without_a_policy_are_ignored(log):
    note = log.witnessed(8, *WITNESSES)
    assert verify_export(log.export(), note, log.keys()).log_key
    stranger = SigningKey.generate("x")
    note = add_signature_lines(note, sign_note(note[:note.index("\n\n") + 1],
                                               [("someone.else", stranger.sign, stranger.public_key_raw)])
                               .split("\n\n", 1)[1])
    assert verify_export(log.export(), note, log.keys()).log_key


# --- receipts ----------------------------------------------------------------------------------------

def test_receipts_follow_the_rule(log):
    result = verify_receipt(log.receipt_with(6, log.witnessed(8, "sh")), log.keys())
    assert result["log_key"] == log.log_keys[0][0].key_id and result["witnesses"] is None
    assert "signed by the log key log-" in receipt_text(result)
    with pytest.raises(VerificationError, match="not signed by the log key"):
        verify_receipt(log.receipt_with(6, log.checkpoint(8, signers=log.region_signers())), log.keys())
    legacy = verify_receipt(log.receipt_with(2, log.checkpoint(4, signers=log.region_signers())), log.keys())
    assert legacy["cosigned_by"] == ["KS", "SH"] and "cosigned by KS, SH" in receipt_text(legacy)


def test_receipts_with_a_policy(log):
    result = verify_receipt(log.receipt_with(6, log.witnessed(8, *WITNESSES)), log.keys(), log.policy())
    assert result["witnesses"] == ["sh", "ks", "wj"]
    assert receipt_text(result).endswith(f"signed by the log key {result['log_key']}, cosigned by witnesses sh, ks, wj")
    with pytest.raises(VerificationError) as info:
        verify_receipt(log.receipt_with(6, log.witnessed(8, "sh", "ks")), log.keys(), log.policy())
    assert info.value.where == "checkpoint" and "quorum regions is not met" in info.value.why
    # A receipt whose tlog-proof carries the checkpoint without its cosignatures is not the same receipt.
    receipt = log.receipt_with(6, log.witnessed(8, *WITNESSES))
    receipt["tlog_proof"] = receipt["tlog_proof"].split("\n\n", 1)[0] + "\n\n" + log.witnessed(8)
    with pytest.raises(VerificationError, match="tlog_proof's checkpoint"):
        verify_receipt(receipt, log.keys(), log.policy())


# --- verify --policy -----------------------------------------------------------------------------------

def test_a_policy_names_the_witnesses_that_cosigned(log):
    summary = verify_export(log.export(), log.witnessed(8, *WITNESSES), log.keys(), policy=log.policy())
    assert summary.witnesses == ("sh", "ks", "wj")
    assert "cosigned by witnesses sh, ks, wj" in summary.text()
    none = verify_export(log.export(), log.witnessed(8), log.keys(), policy=log.policy("quorum none\n"))
    assert "cosigned by no witness (the policy's quorum is none)" in none.text()


def test_a_checkpoint_short_of_the_quorum_fails_before_any_entry_is_read(log):
    def entries():
        raise AssertionError("the export was read")
        yield  # pragma: no cover

    with pytest.raises(VerificationError) as info:
        verify_export(entries(), log.witnessed(8, "sh", "ks"), log.keys(), policy=log.policy())
    assert info.value.where == "checkpoint" and "does not satisfy the policy" in info.value.why
    assert "group regions needs 3 of sh, ks, wj and has 2 (sh, ks)" in info.value.why


def test_the_previous_checkpoint_must_satisfy_the_policy_too(log):
    policy = log.policy("group two 2 sh ks wj\nquorum two\n")
    summary = verify_export(log.export(), log.witnessed(8, "sh", "ks"), log.keys(), log.witnessed(6, "ks", "wj"),
                            policy=policy)
    assert summary.previous_size == 6
    error = rejected(log, log.witnessed(8, "sh", "ks"), log.checkpoint(4, signers=log.region_signers()),
                     policy=policy)
    assert error.where == "previous checkpoint" and "not signed by a log key of the policy" in error.why


def test_a_policy_with_another_log_key_fails(log):
    other = SigningKey.generate("log")
    policy = Policy.parse(f"log {verifier_key(ORIGIN, other.public_key_raw)}\nquorum none\n")
    error = rejected(log, log.witnessed(8, *WITNESSES), policy=policy)
    assert "not signed by a log key of the policy" in error.why


def test_the_policy_does_not_excuse_the_keys_rule(log):
    """A policy whose log key the keys document does not publish: the keys still demand their log key."""
    impostor = SigningKey.generate("log")
    note = log.checkpoint(8, signers=[(ORIGIN, impostor.sign, impostor.public_key_raw)] + log.region_signers())
    policy = Policy.parse(f"log {verifier_key(ORIGIN, impostor.public_key_raw)}\nquorum none\n")
    assert "not signed by the log key" in rejected(log, note, policy=policy).why


@settings(max_examples=50)
@given(data=st.data())
def test_mutated_cosigned_checkpoints_fail_cleanly_or_keep_their_root(log, data):
    note = log.witnessed(8, *WITNESSES)
    at = data.draw(st.integers(0, len(note) - 1))
    mutated = note[:at] + data.draw(st.text(max_size=3)) + note[at + data.draw(st.integers(0, 2)):]
    try:
        summary = verify_export(log.export(), mutated, log.keys(), policy=log.policy())
    except VerificationError:
        return
    assert summary.root == b64(log.root(8)) and summary.witnesses == ("sh", "ks", "wj")


# --- the command lines ------------------------------------------------------------------------------------

@pytest.fixture
def files(log, tmp_path):
    paths = {name: tmp_path / name for name in ("ledger.jsonl", "checkpoint.txt", "short.txt", "keys.json",
                                                   "policy.txt", "bad.policy", "receipt.json")}
    paths["ledger.jsonl"].write_bytes(log.blob())
    paths["checkpoint.txt"].write_text(log.witnessed(8, *WITNESSES), encoding="utf-8")
    paths["short.txt"].write_text(log.witnessed(8, "sh"), encoding="utf-8")
    paths["keys.json"].write_text(json.dumps(log.keys_json()), encoding="utf-8")
    paths["policy.txt"].write_text(log.policy_text(), encoding="utf-8")
    paths["bad.policy"].write_text(log.policy_text("group regions all sh ks nobody\nquorum regions\n"),
                                   encoding="utf-8")
    paths["receipt.json"].write_text(json.dumps(log.receipt_with(6, log.witnessed(8, *WITNESSES))),
                                     encoding="utf-8")
    return {name: str(path) for name, path in paths.items()}


def export_args(files, checkpoint="checkpoint.txt", policy="policy.txt"):
    return ["export", files["ledger.jsonl"], "--checkpoint", files[checkpoint], "--keys", files["keys.json"],
            "--policy", files[policy]]


def test_main_with_a_policy(files, capsys):
    assert main(export_args(files)) == 0
    assert "cosigned by witnesses sh, ks, wj" in capsys.readouterr().out
    assert main(["receipt", files["receipt.json"], "--keys", files["keys.json"], "--policy", files["policy.txt"]]) == 0
    assert capsys.readouterr().out.rstrip().endswith("cosigned by witnesses sh, ks, wj")
    assert main(export_args(files, checkpoint="short.txt")) == 1
    assert capsys.readouterr().err.startswith("FAILED at checkpoint: does not satisfy the policy: the quorum regions")
    assert main(export_args(files, policy="bad.policy")) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAILED at policy: line 5: ") and "nobody is not a witness or group" in err
    assert main(export_args(files, policy="keys.json")) == 1
    assert capsys.readouterr().err.startswith("FAILED at policy: line 1: unknown directive '{\"origin\":'")


def test_jobs_and_one_process_agree_with_a_policy(files):
    one = verify_export_files(files["ledger.jsonl"], files["checkpoint.txt"], files["keys.json"],
                              policy_path=files["policy.txt"])
    two = verify_export_files(files["ledger.jsonl"], files["checkpoint.txt"], files["keys.json"], jobs=2,
                              chunk_bytes=700, policy_path=files["policy.txt"])
    assert one == two and one.witnesses == ("sh", "ks", "wj")
    for jobs in (1, 2):
        with pytest.raises(VerificationError, match="does not satisfy the policy"):
            verify_export_files(files["ledger.jsonl"], files["short.txt"], files["keys.json"], jobs=jobs,
                                policy_path=files["policy.txt"])


def test_click_commands_with_a_policy(files, tmp_path):
    runner = CliRunner()
    result = runner.invoke(verify_command, export_args(files)[1:])
    assert result.exit_code == 0 and "cosigned by witnesses sh, ks, wj" in result.output, result.output
    result = runner.invoke(verify_command, export_args(files, checkpoint="short.txt")[1:])
    assert result.exit_code == 1 and "FAILED at checkpoint: does not satisfy the policy" in result.output
    result = runner.invoke(verify_receipt_command, [files["receipt.json"], "--keys", files["keys.json"],
                                                    "--policy", files["policy.txt"]])
    assert result.exit_code == 0 and "cosigned by witnesses sh, ks, wj" in result.output
    result = runner.invoke(verify_receipt_command, [files["receipt.json"], "--keys", files["keys.json"],
                                                    "--policy", str(tmp_path / "missing.policy")])
    assert result.exit_code == 1 and "FAILED at policy: cannot read" in result.output


def test_the_copied_ledger_package_verifies_with_a_policy(files, tmp_path):
    """policy.py is part of the pure package an auditor copies and runs alone."""
    package = os.path.dirname(os.path.abspath(sys.modules["voucher_service.ledger"].__file__))
    shutil.copytree(package, tmp_path / "auditor" / "ledger", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import sys, runpy\n"
            "for name in ('flask', 'sqlmodel', 'sqlalchemy', 'voucher_service', 'click'):\n"
            "    sys.modules[name] = None\n"
            "sys.argv = ['verify'] + sys.argv[1:]\n"
            "runpy.run_module('ledger.verify', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code] + export_args(files), cwd=tmp_path / "auditor",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cosigned by witnesses sh, ks, wj" in done.stdout
