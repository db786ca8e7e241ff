"""A small, real transparency log for tests, built from the ledger package alone.

Entries are built and signed as the service builds them (Entry, sign_entry,
canonical bytes), the tree is RFC 9162 over the stored lines, checkpoints are
signed by a log key whose note name is the origin, and the keys document has
exactly the shape of GET /ledger/keys. `TLogServer` serves it over HTTP on
127.0.0.1, so the monitor and the verifying witness can be run as real
processes against it.

Tampering is done on the log itself, and the server serves whatever log it
holds (`server.log` may be swapped for another):

    log.replace(seq, line)          the export shows other bytes for `seq`; the tree still commits to the old
                                    ones, as after an edited database row (`keep_leaf=False`: rehashed too)
    other = log.fork(at)            another history sharing the log key, region keys and the first `at` entries
    log.truncate(size)              a rollback of the tail
    server.checkpoint_note = note   serve this note instead of a fresh checkpoint of the log

    log = TLog()
    log.fund("KS", 100_000)
    log.issue("KS", "v-1", 30_000)
    log.rotate("KS")                # a key.rotated entry, endorsed by the retired key
    with TLogServer(log, token="secret") as server:
        ...server.base_url...
"""
from __future__ import annotations

import base64
import copy
import json
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from voucher_service.ledger import merkle
from voucher_service.ledger.accounts import budget_account, held_account, treasury_account, voucher_account
from voucher_service.ledger.canonical import canonical_bytes
from voucher_service.ledger.endorsement import endorse
from voucher_service.ledger.entry import SIGNATURE_ALG, TIMESTAMP_FORMAT, Entry, Posting
from voucher_service.ledger.note import Checkpoint, sign_note, verifier_key
from voucher_service.ledger.signing import SigningKey, sign_entry

ORIGIN = "vouchers.test/tlog"
EPOCH = datetime(2026, 3, 2, 8, 0, 0, tzinfo=timezone.utc)
TICK = timedelta(seconds=1)
API = "/api/v1/ledger"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass
class RegionKey:
    key: SigningKey
    region: str
    valid_from: str
    valid_until: str | None = None

    def record(self, origin: str) -> dict:
        name = f"{origin}/{self.region}"
        return {"key_id": self.key.key_id, "region": self.region, "alg": SIGNATURE_ALG,
                "public_key": b64(self.key.public_key_raw), "note_name": name,
                "note_key": verifier_key(name, self.key.public_key_raw), "valid_from": self.valid_from,
                "valid_until": self.valid_until, "purpose": "entry"}


class TLog:
    """An in-memory ledger: `lines` are what the export serves, `leaves` what the tree commits to."""

    def __init__(self, origin: str = ORIGIN, regions=("KS", "GZ"), *, upgraded: bool = True):
        self.origin = origin
        self.now = EPOCH
        self.lines: list[bytes] = []
        self.leaves: list[bytes] = []
        self.region_keys: list[RegionKey] = []
        for region in regions:
            self.join(region)
        self.log_key: SigningKey | None = None
        self.log_key_valid_from: str | None = None
        if upgraded:
            self.upgrade()

    # --- time and keys -------------------------------------------------------------------------

    def tick(self) -> str:
        self.now += TICK
        return self.now.strftime(TIMESTAMP_FORMAT)

    def join(self, region: str) -> RegionKey:
        """A region's first entry-signing key (a newly joined region)."""
        record = RegionKey(SigningKey.generate(region), region, self.tick())
        self.region_keys.append(record)
        return record

    def upgrade(self) -> SigningKey:
        """Make the operator's log key: from now on checkpoints are signed by it."""
        self.log_key = SigningKey.generate("log")
        self.log_key_valid_from = self.tick()
        return self.log_key

    def active_key(self, region: str) -> RegionKey:
        return next(k for k in self.region_keys if k.region == region and k.valid_until is None)

    def keys_json(self) -> dict:
        """The document of GET /ledger/keys: entry keys by region and age, then the log key."""
        records = [k.record(self.origin) for k in sorted(self.region_keys, key=lambda k: (k.region, k.valid_from))]
        if self.log_key is not None:
            records.append({"key_id": self.log_key.key_id, "region": None, "alg": SIGNATURE_ALG,
                            "public_key": b64(self.log_key.public_key_raw), "note_name": self.origin,
                            "note_key": self.log_vkey, "valid_from": self.log_key_valid_from,
                            "valid_until": None, "purpose": "log"})
        return {"origin": self.origin, "keys": records}

    @property
    def log_vkey(self) -> str:
        return verifier_key(self.origin, self.log_key.public_key_raw)

    # --- entries --------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.leaves)

    def append(self, kind: str, region: str, *, postings=(), data=None, refs=None, key: SigningKey | None = None,
               ts: str | None = None) -> bytes:
        """Sign and append one entry (by the region's active key unless `key` is given)."""
        entry = Entry(seq=self.size, ts=ts or self.tick(), kind=kind, region=region, actor=f"officer-{region}",
                      refs=refs or {"region": region}, postings=tuple(Posting(*p) for p in postings),
                      data=data or {})
        line = sign_entry(entry, key or self.active_key(region).key)
        self.lines.append(line)
        self.leaves.append(merkle.leaf_hash(line))
        return line

    def fund(self, region: str, amount_fen: int) -> bytes:
        return self.append("budget.funded", region, postings=[(treasury_account(region), budget_account(region),
                                                               amount_fen)], data={"amount_fen": amount_fen})

    def issue(self, region: str, voucher_id: str, amount_fen: int) -> bytes:
        return self.append("voucher.issued", region, refs={"voucher": voucher_id},
                           postings=[(budget_account(region), voucher_account(voucher_id), amount_fen)],
                           data={"face_value_fen": amount_fen})

    def reserve(self, region: str, voucher_id: str, amount_fen: int) -> bytes:
        return self.append("redemption.reserved", region, refs={"voucher": voucher_id},
                           postings=[(voucher_account(voucher_id), held_account(voucher_id), amount_fen)])

    def rotate(self, region: str, *, endorsed: bool = True, endorse_with: SigningKey | None = None,
               data_extra: dict | None = None) -> bytes:
        """A key.rotated entry as journal/keys.rotate_region_key writes it: the old key retires, the new
        one (valid from the same instant) signs the entry, the old one endorses it. `endorse_with`: a
        wrong key signs the endorsement (under the retired key's id); `endorsed=False`: none at all."""
        old = self.active_key(region)
        now = self.tick()
        new = RegionKey(SigningKey.generate(region), region, now)
        old.valid_until = now
        self.region_keys.append(new)
        name = f"{self.origin}/{region}"
        data = {"retired_key_id": old.key.key_id, "key_id": new.key.key_id,
                "note_key": verifier_key(name, new.key.public_key_raw), "valid_from": now}
        if endorsed:
            data["endorsement"] = endorse(region, data, old.key.key_id, (endorse_with or old.key).sign)
        data.update(data_extra or {})
        return self.append("key.rotated", region, data=data, ts=now)

    def several(self, count: int, region: str = "KS") -> None:
        """`count` more valid entries: a funding, then issues out of it."""
        self.fund(region, 1_000 * count)
        for number in range(count - 1):
            self.issue(region, f"v-{region}-{self.size}-{number}", 1_000)

    # --- tampering ------------------------------------------------------------------------------

    def replace(self, seq: int, line: bytes, *, keep_leaf: bool = True) -> None:
        self.lines[seq] = line
        if not keep_leaf:
            self.leaves[seq] = merkle.leaf_hash(line)

    def edit(self, seq: int, change) -> bytes:
        """The export's entry `seq` with `change(entry_json)` applied, its signature left as it was."""
        entry = json.loads(self.lines[seq])
        change(entry)
        line = canonical_bytes(entry)
        self.replace(seq, line)
        return line

    def truncate(self, size: int) -> None:
        del self.lines[size:], self.leaves[size:]

    def fork(self, at: int) -> "TLog":
        """Another history: the first `at` entries, the same log key, and the region keys as they were
        after entry `at - 1` (a key rotated later is active again in the fork)."""
        other = copy.copy(self)
        other.lines, other.leaves = self.lines[:at], self.leaves[:at]
        cutoff = json.loads(self.lines[at - 1])["ts"] if at else None
        other.region_keys = []
        for record in self.region_keys:
            if cutoff is not None and record.valid_from > cutoff and any(
                    k.region == record.region and k.valid_from <= cutoff for k in self.region_keys):
                continue
            kept = copy.copy(record)
            if cutoff is not None and kept.valid_until is not None and kept.valid_until > cutoff:
                kept.valid_until = None
            other.region_keys.append(kept)
        return other

    # --- the tree and checkpoints ---------------------------------------------------------------

    def read_nodes(self, nodes):
        return [merkle.root_from_leaves(self.leaves[index << level:(index + 1) << level]) for level, index in nodes]

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_from_leaves(self.leaves[:self.size if size is None else size])

    def consistency(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, second, self.read_nodes)

    def checkpoint(self, size: int | None = None, *, log: bool = True, legacy: bool = False,
                   signers=()) -> str:
        """The signed checkpoint of the first `size` entries: by the log key (`log`), by every region's
        active key as before the upgrade (`legacy`), and by any extra (name, sign, public_key_raw)."""
        size = self.size if size is None else size
        text = Checkpoint(self.origin, size, self.root(size)).text()
        chosen = []
        if log:
            chosen.append((self.origin, self.log_key.sign, self.log_key.public_key_raw))
        if legacy:
            chosen += [(f"{self.origin}/{k.region}", k.key.sign, k.key.public_key_raw)
                       for k in sorted(self.region_keys, key=lambda k: k.region) if k.valid_until is None]
        return sign_note(text, [*chosen, *signers])


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        fixture = self.server.fixture
        fixture.requests.append(self.path)
        parts = urllib.parse.urlsplit(self.path)
        query = {name: values[-1] for name, values in urllib.parse.parse_qs(parts.query).items()}
        log = fixture.log
        try:
            if parts.path == f"{API}/keys":
                return self._send(200, "application/json", json.dumps(fixture.keys_document or log.keys_json()))
            if parts.path == f"{API}/checkpoint":
                note = fixture.checkpoint_note or log.checkpoint()
                return self._send(200, "text/plain; charset=utf-8", note)
            if parts.path == f"{API}/proofs/consistency":
                first, second = int(query["first"]), int(query["second"])
                if not 0 <= first <= second <= log.size:
                    return self._problem(422, f"no consistency proof from {first} to {second}")
                hashes = [b64(h) for h in log.consistency(first, second)]
                return self._send(200, "application/json", json.dumps({"hashes": hashes}))
            if parts.path == f"{API}/export":
                if self.headers.get("Authorization") != f"Bearer {fixture.token}":
                    return self._problem(401, "an auditor token is required")
                start, end = int(query.get("start", 0)), int(query.get("end", log.size))
                if not 0 <= start <= end <= len(log.lines):
                    return self._problem(422, f"no entries {start}..{end}")
                body = b"".join(line + b"\n" for line in log.lines[start:end])
                return self._send(200, "application/jsonl", body, {"Ledger-Tree-Size": str(log.size)})
        except (KeyError, ValueError):
            return self._problem(400, "bad query")
        return self._problem(404, "not found")

    def _problem(self, status: int, detail: str):
        self._send(status, "application/problem+json", json.dumps({"status": status, "title": detail,
                                                                    "detail": detail, "type": "about:blank"}))

    def _send(self, status: int, content_type: str, body, headers=None):
        raw = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fixture: "TLogServer"


class TLogServer:
    """The log's ledger endpoints on 127.0.0.1 (a free port), in a thread of the test process."""

    def __init__(self, log: TLog, token: str = "auditor-token"):
        self.log = log
        self.token = token
        self.checkpoint_note: str | None = None   # served instead of log.checkpoint() when set
        self.keys_document: dict | None = None    # served instead of log.keys_json() when set
        self.requests: list[str] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fixture = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "TLogServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "TLogServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
