"""DESIGN §10 end to end: the service and three witnesses, each a separate
process with its own key directory and passphrase.

- Checkpoints carry three valid cosignatures, and a policy requiring all
  three verifies the export offline.
- A second instance holding a copy of the log key but another history gets
  no cosignature from any witness, and `vouchers verify --policy` rejects its
  export.
- A witness killed (kill -9) while the log grows resumes after a restart and
  cosigns again, never anything inconsistent with what it cosigned before.
- An entry edited in the database, with its hashes rewritten to match, is
  refused by the service's own publisher (readiness turns to the
  ledger_integrity problem) and, when an operator holding the log key
  submits it anyway, by the verifying witnesses.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import PASSPHRASE, Actors
from helpers import wait_for_checkpoint
from server import Server
from sqlmodel import Session, select
from witness_process import WitnessProcess

from voucher_service.db import get_engine
from voucher_service.journal import store as journal
from voucher_service.journal.keys import KeyRing, log_key_record
from voucher_service.journal.publisher import load_witnesses, publish_round
from voucher_service.journal.tree import PUBLISHED_NOTE_TTL_S
from voucher_service.ledger import merkle
from voucher_service.ledger.cosignature import Cosigner, cosignatures
from voucher_service.ledger.merkle import node_key
from voucher_service.ledger.note import Checkpoint, sign_note
from voucher_service.ledger.tlog_witness import request_body
from voucher_service.models import LedgerEntry, LedgerNode, WitnessStatus

BIN = os.path.dirname(sys.executable)
ORIGIN = "vouchers.example/ledger"
COSIGNED_TIMEOUT_S = 60
NAMES = ("w1", "w2", "w3")
MODES = {"w1": "verifying", "w2": "verifying", "w3": "plain"}


def _passphrase(name: str) -> str:
    return f"witness-{name}-passphrase"  # every witness its own


class Deployment:
    def __init__(self, databases, tmp):
        self.databases, self.tmp = databases, tmp
        self.url = databases.clone()
        self.app = databases.app(self.url)
        self.actors = Actors(self.app)
        self.auditor = self.actors.token("auditor")
        with self.app.app_context(), Session(get_engine()) as session:
            record = log_key_record(session)
            self.log_vkey = next(k["note_key"] for k in self.app.test_client().get("/api/v1/ledger/keys").json["keys"]
                                 if k["purpose"] == "log")
            assert record.note_name == ORIGIN
        self.witnesses = {name: WitnessProcess(tmp / name, f"witness.{name}.example", mode=MODES[name],
                                               passphrase=_passphrase(name)) for name in NAMES}
        self.witnesses_file = tmp / "witnesses"

    def start(self):
        lines = []
        for name, witness in self.witnesses.items():
            witness.init()
            lines.append(f"{name} {witness.vkey} http://127.0.0.1:{witness.port}")
        self.witnesses_file.write_text("\n".join(lines) + "\n")
        self.server = Server(self.url, self.databases.keys_dir, str(self.tmp / "server.log"), workers=2,
                             VOUCHERS_WITNESSES=str(self.witnesses_file), VOUCHERS_WITNESS_TIMEOUT_S=5).start()
        self.client = self.server.client
        for name, witness in self.witnesses.items():
            witness.add_log(ORIGIN, self.log_vkey, self.server.base, self.auditor)
            witness.start()
        return self

    def stop(self):
        self.server.stop()
        for witness in self.witnesses.values():
            witness.stop()
        with self.app.app_context():
            get_engine().dispose()
        self.databases.drop(self.url)

    def issue(self, count: int = 1) -> None:
        sme, officer = self.actors.token("sme", enterprise_id="ent-ks-003"), self.actors.token("officer", region="KS")
        for _ in range(count):
            application = self.client.api("POST", "/applications", sme, {"amount_fen": 10_000, "purpose": "witnessed"})
            assert application.status == 201, application.raw
            approved = self.client.api("POST", f"/applications/{application.json['id']}/approve", officer, {})
            assert approved.status == 200, approved.raw

    def tree_size(self) -> int:
        return int(self.client.api("GET", "/ledger/export", self.auditor).headers["Ledger-Tree-Size"])

    def cosigners(self):
        return [w.cosigner for w in self.witnesses.values()]

    def wait_until_cosigned(self, names=NAMES, size: int | None = None) -> str:
        """The published checkpoint once it covers `size` (the tree now) and carries valid cosignatures by `names`."""
        size = self.tree_size() if size is None else size
        deadline = time.monotonic() + COSIGNED_TIMEOUT_S
        while True:
            note = wait_for_checkpoint(self.client, size, COSIGNED_TIMEOUT_S, settle=False).raw.decode("utf-8")
            found = set(cosignatures(note, self.cosigners()))
            if {self.witnesses[n].name for n in names} <= found:
                # One worker shows the cosignatures; another may serve its
                # remembered copy with fewer for up to the TTL (CI saw w3 missing).
                time.sleep(PUBLISHED_NOTE_TTL_S)
                return note
            if time.monotonic() > deadline:
                raise AssertionError(f"not cosigned by {names} within {COSIGNED_TIMEOUT_S} s: {note}\n"
                                     + open(self.server.log_path, errors="replace").read()[-3000:])
            time.sleep(0.2)

    def policy(self, path) -> str:
        lines = [f"log {self.log_vkey}"]
        lines += [f"witness {name} {w.vkey}" for name, w in self.witnesses.items()]
        lines += ["group everyone all " + " ".join(NAMES), "quorum everyone"]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def save(self, client, auditor, stem) -> dict:
        files = {"export": self.tmp / f"{stem}.jsonl", "checkpoint": self.tmp / f"{stem}.checkpoint",
                 "keys": self.tmp / f"{stem}.keys.json"}
        files["checkpoint"].write_bytes(client("GET", "/ledger/checkpoint", None))
        files["export"].write_bytes(client("GET", "/ledger/export", auditor))
        files["keys"].write_bytes(client("GET", "/ledger/keys", None))
        return files


def verify(files, policy=None) -> subprocess.CompletedProcess:
    args = [os.path.join(BIN, "vouchers"), "verify", str(files["export"]), "--checkpoint", str(files["checkpoint"]),
            "--keys", str(files["keys"])] + (["--policy", policy] if policy else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def deployment(databases, tmp_path_factory):
    deployed = Deployment(databases, tmp_path_factory.mktemp("witnessed")).start()
    try:
        yield deployed
    finally:
        deployed.stop()


def _over_http(deployment):
    def get(method, path, token):
        reply = deployment.client.api(method, path, token, headers={"Accept": "*/*"})
        assert reply.status == 200, (path, reply.status, reply.raw[:300])
        return reply.raw
    return get


def test_checkpoints_carry_three_valid_cosignatures_and_verify_under_the_policy(deployment, tmp_path):
    deployment.issue(3)
    note = deployment.wait_until_cosigned()
    found = cosignatures(note, deployment.cosigners())
    assert set(found) == {w.name for w in deployment.witnesses.values()}
    assert all(abs(ts - time.time()) < 300 for ts in found.values()), "cosigned now, by their own clocks"
    size = int(note.splitlines()[1])
    listed = deployment.client.api("GET", "/ledger/witnesses").json
    assert {w["name"]: w["cosigned_size"] for w in listed["witnesses"]} == {name: size for name in NAMES}
    assert all(w["ok"] and Cosigner.parse(w["vkey"]) for w in listed["witnesses"])
    metrics = deployment.client.request("GET", "/metrics").raw.decode()
    for name in NAMES:
        assert f'vouchers_witness_cosigned_size{{witness="{name}"}} {float(size)}' in metrics, metrics[-2000:]
    assert "vouchers_checkpoint_publish_lag_entries" in metrics

    files = deployment.save(_over_http(deployment), deployment.auditor, "honest")
    policy = deployment.policy(tmp_path / "policy")
    done = verify(files, policy)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in NAMES:
        assert name in done.stdout or deployment.witnesses[name].name in done.stdout, done.stdout


def test_a_second_instance_with_a_copy_of_the_log_key_gets_no_cosignature(deployment, databases, tmp_path):
    honest = deployment.wait_until_cosigned()
    # The same seeded start, the same log key and region keys (the same key directory), another history.
    fork_url = databases.clone()
    fork = databases.app(fork_url)
    try:
        actors = Actors(fork)
        for amount in range(30):
            application = actors.sme("ent-sh-001").post("/applications", json={"amount_fen": 20_000 + amount,
                                                                              "purpose": "another history"})
            assert application.status_code == 201
            assert actors.officer("SH").post(f"/applications/{application.json['id']}/approve",
                                             json={}).status_code == 200
        witnesses = load_witnesses(str(deployment.witnesses_file))
        with fork.app_context():
            published = publish_round(get_engine(), fork.extensions["vouchers_keyring"], ORIGIN, witnesses,
                                      timeout_s=10)
            with Session(get_engine()) as session:
                errors = {s.name: s.error for s in session.exec(select(WitnessStatus)).all()}
        assert int(published.note.splitlines()[1]) > int(honest.splitlines()[1]), "the fork is the longer tree"
        assert cosignatures(published.note, deployment.cosigners()) == {}, "a witness cosigned a fork"
        assert set(errors) == set(NAMES) and all(errors.values()), errors
        assert all("422" in error or "409" in error for error in errors.values()), errors

        client = fork.test_client()

        def get(method, path, token):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            reply = client.get("/api/v1" + path, headers=headers)
            assert reply.status_code == 200, reply.data[:300]
            return reply.data
        files = deployment.save(get, actors.token("auditor"), "fork")
        plain = verify(files)
        assert plain.returncode == 0, "the fork is well formed and log-signed: only the witnesses tell"
        done = verify(files, deployment.policy(tmp_path / "policy"))
        assert done.returncode == 1 and "FAILED" in done.stderr, done.stdout + done.stderr
    finally:
        with fork.app_context():
            get_engine().dispose()
        databases.drop(fork_url)
    # The honest log goes on being cosigned.
    deployment.issue(1)
    deployment.wait_until_cosigned()


def test_a_witness_killed_while_the_log_grows_resumes_without_cosigning_anything_inconsistent(deployment):
    before = deployment.wait_until_cosigned()
    w1 = deployment.witnesses["w1"]
    held = w1.state.latest(ORIGIN)
    w1.kill()  # kill -9, in whatever it was doing
    deployment.issue(2)
    during = deployment.wait_until_cosigned(names=("w2", "w3"))
    assert w1.name not in cosignatures(during, deployment.cosigners())
    assert w1.state.latest(ORIGIN) == held, "a dead witness's state does not move"
    w1.start()
    after = deployment.wait_until_cosigned()
    assert int(after.splitlines()[1]) >= int(during.splitlines()[1]) > int(before.splitlines()[1])
    resumed = w1.state.latest(ORIGIN)
    assert resumed.size == int(after.splitlines()[1]) and resumed.root == Checkpoint.parse(
        after[:after.index("\n\n") + 1]).root_hash


def _rewrite_hashes_of(session: Session, seq: int, canonical: bytes) -> None:
    """What an administrator who wants an edit to go unnoticed does: the entry's
    bytes, its leaf hash and every stored node above it, made to agree."""
    row = session.get(LedgerEntry, seq)
    row.canonical, row.leaf_hash = canonical, merkle.leaf_hash(canonical)
    session.add(row)
    level, index, value = 0, seq, merkle.leaf_hash(canonical)
    while True:
        node = session.get(LedgerNode, node_key((level, index)))
        if node is None:
            break
        if level:
            left = session.get(LedgerNode, node_key((level - 1, 2 * index))).hash
            right = session.get(LedgerNode, node_key((level - 1, 2 * index + 1))).hash
            value = merkle.node_hash(bytes(left), bytes(right))
        node.hash = value
        session.add(node)
        session.flush()
        level, index = level + 1, index // 2
    session.commit()


def test_an_edited_entry_is_refused_by_the_publisher_and_by_the_verifying_witnesses(deployment):
    deployment.wait_until_cosigned()
    # The edit is made while the service is down, so that its publisher's first look at the new
    # entry is the edited one (a running publisher may have signed it already; readiness then
    # notices the stored tree no longer has the signed root: tests/functional/test_ledger_integrity.py).
    deployment.server.stop()
    held = {name: w.state.latest(ORIGIN).size for name, w in deployment.witnesses.items()}
    application = deployment.actors.sme("ent-ks-003").post("/applications", json={"amount_fen": 10_000,
                                                                                "purpose": "edited"})
    assert deployment.actors.officer("KS").post(f"/applications/{application.json['id']}/approve",
                                                json={}).status_code == 200
    with deployment.app.app_context(), Session(get_engine()) as session:
        size = journal.lock_ledger(session)
        session.rollback()
        last = session.get(LedgerEntry, size - 1)
        edited = bytes(last.canonical).replace(b'"face_fen":10000', b'"face_fen":99000')
        assert edited != bytes(last.canonical)
        _rewrite_hashes_of(session, size - 1, edited)
    deployment.server.start(ready_path="/healthz")

    # The service's publisher checks entry signatures before it signs: it refuses, and says so.
    deadline = time.monotonic() + COSIGNED_TIMEOUT_S
    while True:
        ready = deployment.client.request("GET", "/readyz")
        if ready.status == 503:
            break
        assert time.monotonic() < deadline, "readiness never noticed the edited entry"
        time.sleep(0.2)
    assert ready.headers.get_content_type() == "application/problem+json"
    assert ready.json["type"] == "urn:vouchers:problem:ledger_integrity", ready.json
    assert int(deployment.client.api("GET", "/ledger/checkpoint").raw.split(b"\n")[1]) < size

    # An operator holding the log key submits the doctored tree to the witnesses anyway.
    keyring = KeyRing(deployment.databases.keys_dir, PASSPHRASE)
    with deployment.app.app_context(), Session(get_engine()) as session:
        record = log_key_record(session)
        read = journal.node_reader(session)
        root = merkle.root(size, read)
        key = keyring.load(record.key_id)
        note = sign_note(Checkpoint(ORIGIN, size, root).text(), [(ORIGIN, key.sign, bytes(record.public_key))])
        answers = {}
        for name, witness in deployment.witnesses.items():
            proof = merkle.consistency_proof(held[name], size, read) if held[name] else []
            answers[name] = witness.post(request_body(held[name], proof, note))
    assert answers["w3"].status == 200, "the plain witness checks consistency only: it cosigns"
    for name in ("w1", "w2"):
        assert answers[name].status != 200, (name, answers[name].status, answers[name].text)
        assert str(size - 1) in answers[name].text, answers[name].text  # names the edited entry
        assert deployment.witnesses[name].state.latest(ORIGIN).size == held[name], "a refusal stores nothing"
