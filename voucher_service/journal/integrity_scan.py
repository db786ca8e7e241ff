"""Stored entry bytes against the stored hashes and the signed root, and the
posting rows against the entries: what readiness and the reconciliation
statement check on every call (DESIGN §10, last bullet).

The entry is its canonical bytes; everything else the service stores about it
is derived and could be edited apart from them: the `leaf_hash` column, the
Merkle nodes (`ledger_node`, level 0 being the leaves), the columns of
`ledger_entry` (ts, kind, region, ...) and the `ledger_posting` rows, which
are what the statement and the reports sum. Over a range of entries a scan
checks

(a) each entry's bytes, hashed as a leaf, against its `leaf_hash` column and
    its stored level-0 node, and its columns against the bytes;
(b) the root of the latest checkpoint's size, recomputed from stored nodes,
    against the root it signed (and the checkpoint row against its note); and
    the range's leaves, hashed from the bytes and combined with the stored
    nodes outside the range (`merkle.root_with_leaves`), against that signed
    root too. Only this ties the bytes to what was signed: an edit that
    rewrites the bytes, the leaf column and the level-0 node together passes
    (a), and (b) alone reads O(log n) nodes high above the leaves;
(c) the posting rows of each entry against the postings in its bytes.

(a) and (c) cost a pass over the range's rows and a JSON parse per entry, (b)
O(log n) stored nodes more, so each caller picks the range it can afford:
readiness a rolling window and the newest entries (`ReadinessScan`), a
statement the entries of its period (`statement_scan`). Figures at 1M
entries: docs/performance.md §4b; the choices: docs/decisions.md.
"""
from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, literal, select
from sqlmodel import Session

from voucher_service.journal.store import LedgerInvariantError, node_reader
from voucher_service.ledger import merkle
from voucher_service.ledger.note import Checkpoint, parse_note
from voucher_service.models import LedgerCheckpoint, LedgerEntry, LedgerHead, LedgerNode, LedgerPosting

_ENTRY = LedgerEntry.__table__
_NODE = LedgerNode.__table__
_POSTING = LedgerPosting.__table__
_CHECKPOINT = LedgerCheckpoint.__table__

ROWS_PER_QUERY = 5000     # entries read at once: bounds memory, not the range
NODES_PER_QUERY = 2000    # keys in one IN list, well under every database's limit of bound parameters
SHOWN_FINDINGS = 5        # named in a message; all are counted
# The columns of ledger_entry and ledger_posting that copy a member of the bytes.
ENTRY_COLUMNS = ("ts", "kind", "region", "actor")

_COPIED = (*(_ENTRY.c[name] for name in ENTRY_COLUMNS), _ENTRY.c.key_id)
# Rows: seq, bytes, leaf_hash, the level-0 node, then the _COPIED columns.
_ENTRIES = (select(_ENTRY.c.seq, _ENTRY.c.canonical, _ENTRY.c.leaf_hash, _NODE.c.hash, *_COPIED)
            .select_from(_ENTRY.outerjoin(_NODE, _NODE.c.id == _ENTRY.c.seq * 64))
            .where(_ENTRY.c.seq >= bindparam("lo"), _ENTRY.c.seq < bindparam("hi")).order_by(_ENTRY.c.seq))
_POSTING_COLUMNS = (_POSTING.c.seq, _POSTING.c.position, _POSTING.c.ts, _POSTING.c.kind, _POSTING.c.region,
                    _POSTING.c.source, _POSTING.c.destination, _POSTING.c.amount_fen)
_POSTINGS = (select(*_POSTING_COLUMNS)
             .where(_POSTING.c.seq >= bindparam("lo"), _POSTING.c.seq < bindparam("hi")))
_LATEST_CHECKPOINT = (select(_CHECKPOINT.c.size, _CHECKPOINT.c.root_hash, _CHECKPOINT.c.note)
                      .order_by(_CHECKPOINT.c.size.desc()).limit(1))


@dataclass
class Findings:
    """The integrity failures of one kind, counted; the first few described."""
    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, why: str) -> None:
        self.count += 1
        if len(self.shown) < SHOWN_FINDINGS:
            self.shown.append(why)


@dataclass
class Scan:
    """What a scan found, by the check it failed: (a) `hashes`, (b) `signed`,
    (c) and the copied columns `rows`."""
    hashes: Findings = field(default_factory=Findings)
    signed: Findings = field(default_factory=Findings)
    rows: Findings = field(default_factory=Findings)

    @property
    def count(self) -> int:
        return self.hashes.count + self.signed.count + self.rows.count

    def __bool__(self) -> bool:
        return self.count > 0

    def message(self) -> str:
        shown = [why for part in (self.signed, self.hashes, self.rows) for why in part.shown][:SHOWN_FINDINGS]
        more = f" (and {self.count - len(shown)} more)" if self.count > len(shown) else ""
        return "; ".join(shown) + more


@dataclass(frozen=True)
class SignedRoot:
    size: int
    root: bytes


def signed_root(session: Session, scan: Scan) -> SignedRoot | None:
    """The latest checkpoint, once its row agrees with its note; and (b): the
    root recomputed from stored nodes at its size against the signed one."""
    row = session.connection().execute(_LATEST_CHECKPOINT).first()
    if row is None:
        return None
    try:
        signed = Checkpoint.parse(parse_note(row.note)[0])
    except ValueError as exc:
        scan.signed.add(f"the checkpoint of size {row.size} is not a signed checkpoint: {exc}")
        return None
    if (signed.size, signed.root_hash) != (row.size, bytes(row.root_hash)):
        scan.signed.add(f"the checkpoint row of size {row.size} does not match its signed note")
        return None
    head = session.get(LedgerHead, 1)
    size = head.size if head is not None else 0
    if signed.size > size:
        scan.signed.add(f"the ledger holds {size} entries, fewer than the {signed.size} its last checkpoint signed")
        return None
    try:
        stored = merkle.root(signed.size, node_reader(session))
    except LedgerInvariantError as exc:
        scan.signed.add(str(exc))
        return None
    if stored != signed.root_hash:
        scan.signed.add(f"the stored Merkle nodes do not give the root signed at size {signed.size}")
    return SignedRoot(signed.size, signed.root_hash)


_decode = json.JSONDecoder().decode


def _copies(canonical: bytes) -> tuple[tuple, list[tuple]]:
    """What the bytes say the entry's row and posting rows hold, in the order
    _ENTRIES and _POSTINGS read them. Raises ValueError (or TypeError,
    AttributeError, KeyError) when the bytes are not an entry."""
    entry = _decode(canonical.decode("utf-8"))
    ts, kind, region = entry["ts"], entry["kind"], entry["region"]
    seq = entry["seq"]
    postings = [(seq, position, ts, kind, region, p["source"], p["destination"], p["amount"])
                for position, p in enumerate(entry["postings"])]
    return (seq, ts, kind, region, entry["actor"], entry["sig"]["key_id"]), postings


def _check_rows(columns: tuple, canonical: bytes, actual: list[tuple], rows: Findings) -> None:
    """The entry row's columns and its posting rows against its bytes."""
    seq = columns[0]
    try:
        expected_columns, expected = _copies(canonical)
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
        rows.add(f"seq {seq}: the entry's bytes are not a ledger entry ({type(exc).__name__})")
        return
    if columns != expected_columns:
        name, stored, said = next((name, a, b) for name, a, b in zip(("seq", *ENTRY_COLUMNS, "key_id"), columns,
                                                                       expected_columns) if a != b)
        rows.add(f"seq {seq}: column {name} is {stored!r}, the entry's bytes say {said!r}")
    elif (sorted(actual) if len(actual) > 1 else actual) != expected:
        rows.add(f"seq {seq}: its {len(actual)} ledger_posting rows do not match the {len(expected)} "
                 f"postings in its bytes")


def scan_range(session: Session, lo: int, hi: int, signed: SignedRoot | None, scan: Scan, *,
               region: str | None = None, interior: bool = False) -> None:
    """(a), (b) and (c) for the entries [lo, hi).

    Every entry's bytes are hashed, and the part of the range the checkpoint
    covers is chained to its root. The columns and (c) cover every entry, or,
    with `region`, the region's entries and every entry with posting rows of
    the region: the rows a statement of the region sums (a JSON parse per
    entry is most of a scan's cost). `interior` also compares the stored
    nodes above the leaves inside the range (what proofs are served from)
    with the ones the bytes give.
    """
    connection = session.connection()
    postings = _POSTINGS if region is None else _POSTINGS.where(_POSTING.c.region + literal("") == region)
    leaf_hash = merkle.leaf_hash
    leaves: list[bytes] = []
    expected_seq = start = lo
    while start < hi:
        stop = min(hi, start + ROWS_PER_QUERY)
        bound = {"lo": start, "hi": stop}
        rows_by_seq: dict[int, list[tuple]] = {}
        for posting in connection.execute(postings, bound):
            rows_by_seq.setdefault(posting[0], []).append(tuple(posting))
        for seq, canonical, stored_leaf, stored_node, *columns in connection.execute(_ENTRIES, bound):
            if seq != expected_seq:
                scan.hashes.add(f"entries {expected_seq} to {seq - 1} are missing")
                return
            expected_seq += 1
            canonical = bytes(canonical)
            leaf = leaf_hash(canonical)
            leaves.append(leaf)
            if stored_leaf != leaf:
                scan.hashes.add(f"seq {seq}: the entry's bytes do not hash to its stored leaf_hash")
            elif stored_node != leaf:
                scan.hashes.add(f"seq {seq}: the stored Merkle leaf does not match the entry's bytes")
            actual = rows_by_seq.pop(seq, [])
            if region is None or columns[2] == region or actual:
                _check_rows((seq, *columns), canonical, actual, scan.rows)
        for seq in sorted(rows_by_seq):
            scan.rows.add(f"seq {seq}: ledger_posting rows without an entry")
        start = stop
    if expected_seq < hi:
        scan.hashes.add(f"entries {expected_seq} to {hi - 1} are missing")
        return
    inside = merkle.perfect_nodes(lo, leaves) if interior else None
    if signed is not None and lo < signed.size:
        covered = leaves[:signed.size - lo]
        try:
            chained = merkle.root_with_leaves(signed.size, lo, covered, node_reader(session),
                                              inside=inside if len(covered) == len(leaves) else None)
        except LedgerInvariantError as exc:
            scan.signed.add(str(exc))
        else:
            if chained != signed.root:
                scan.signed.add(f"entries {lo} to {lo + len(covered) - 1} are not those the checkpoint of size "
                                f"{signed.size} signed")
    if inside is not None:
        _check_interior(connection, inside, scan.hashes)


def _check_interior(connection, inside: dict, hashes: Findings) -> None:
    """The stored nodes above the leaves (compared already) inside the range."""
    wanted = {merkle.node_key(node): value for node, value in inside.items() if node[0] > 0}
    keys = sorted(wanted)
    stored = {}
    for at in range(0, len(keys), NODES_PER_QUERY):
        # Integers of our own making, written into the statement: binding a
        # thousand parameters costs SQLAlchemy more than the query.
        listed = ",".join(str(int(key)) for key in keys[at:at + NODES_PER_QUERY])
        stored.update(connection.exec_driver_sql(f"SELECT id, hash FROM ledger_node WHERE id IN ({listed})").all())
    for key in keys:
        if stored.get(key) != wanted[key]:
            level, index = key & 63, key >> 6
            hashes.add(f"the stored Merkle node ({level}, {index}) over entries {index << level} to "
                       f"{((index + 1) << level) - 1} does not match their bytes")


# --- readiness --------------------------------------------------------------------------

WINDOW_ENTRIES = 1024   # a power of two: each window is one stored subtree
NEWEST_ENTRIES = 64


REMEMBERED_WINDOWS = 4  # failed windows checked again on every probe: at most this many scans more


class ReadinessScan:
    """The readiness probe's integrity check, and what it keeps between probes.

    Each probe checks (b), the newest `newest_entries` entries, and the next
    window of `window_entries` entries, (a), (b) and (c) with the stored nodes
    inside it; the window moves on with every probe and wraps around, so a
    whole pass over n entries takes ceil(n / window_entries) probes. A window
    that failed is kept and checked again on every probe, so the probe stays
    failing until its rows are repaired, whichever window it moves on to. The
    state is per process: each worker's probes cover the log by themselves,
    from a window of its own choosing, so that workers probed in turn cover
    different parts of it first.
    """

    def __init__(self, window_entries: int = WINDOW_ENTRIES, newest_entries: int = NEWEST_ENTRIES):
        if window_entries < 1 or newest_entries < 0:
            raise ValueError("a readiness scan needs a window of at least one entry")
        self.window_entries = window_entries
        self.newest_entries = newest_entries
        self.next_start: int | None = None
        self.failed: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def probe(self, session: Session) -> tuple[Scan, dict]:
        """What the probe found (nothing: intact) and what it covered."""
        scan = Scan()
        head = session.get(LedgerHead, 1)
        size = head.size if head is not None else 0
        windows = -(-size // self.window_entries)
        with self._lock:
            if self.next_start is None:
                self.next_start = random.randrange(windows) * self.window_entries if windows else 0
            start = self.next_start if self.next_start < size else 0
            window = (start, min(size, start + self.window_entries))
            self.next_start = window[1]
            remembered = [(lo, hi) for lo, hi in self.failed if hi <= size]
        signed = signed_root(session, scan)
        failed = []
        for lo, hi in dict.fromkeys([*remembered, window, (max(0, size - self.newest_entries), size)]):
            before = scan.count
            if lo < hi:
                scan_range(session, lo, hi, signed, scan, interior=True)
            if scan.count > before:
                failed.append((lo, hi))
        with self._lock:
            self.failed = failed[:REMEMBERED_WINDOWS]
        covered = {"checkpoint_size": signed.size if signed else None, "window_start": window[0],
                   "window_end": window[1], "full_pass_probes": windows}
        return scan, covered


# --- the reconciliation statement -------------------------------------------------------

def period_window(session: Session, start_ts: str, end_ts: str) -> tuple[int, int] | None:
    """The seq range [lo, hi) of the entries dated in [start_ts, end_ts): ts never
    decreases along seq, so two probes of the (ts, seq) index."""
    e = _ENTRY.c
    lo = session.connection().execute(select(func.min(e.seq)).where(e.ts >= start_ts)).scalar()
    hi = session.connection().execute(select(func.max(e.seq)).where(e.ts < end_ts)).scalar()
    if lo is None or hi is None or hi < lo:
        return None
    return lo, hi + 1


def statement_scan(session: Session, region: str, start_ts: str, end_ts: str,
                   postings_window: tuple[int, int] | None) -> tuple[Scan, tuple[int, int] | None]:
    """A statement's integrity checks over the entries dated in the period and
    those between the region's posting rows of the period (`postings_window`,
    inclusive): every one hashed and chained to the signed root, and the
    region's entries and posting rows among them compared with the bytes.
    Returns the scan and the seq range [lo, hi) it covered."""
    scan = Scan()
    signed = signed_root(session, scan)
    bounds = [w for w in (period_window(session, start_ts, end_ts),
                          postings_window and (postings_window[0], postings_window[1] + 1)) if w]
    if not bounds:
        return scan, None
    lo, hi = min(w[0] for w in bounds), max(w[1] for w in bounds)
    scan_range(session, lo, hi, signed, scan, region=region)
    return scan, (lo, hi)
