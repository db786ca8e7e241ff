"""The replay of the entries in seq order: the one posting replay of the
project (balances), the running Merkle tree, and what is compared with the
signed checkpoints at the end.

`apply_postings` is also what the database's integrity check
(journal/integrity.py) feeds the stored rows to, so the service and an
auditor apply one rule to one replay.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

from .. import merkle
from ..accounts import TREASURY_PREFIX, may_go_negative
from .checkpoint import check_cosigners, open_checkpoint
from .common import VerificationError, b64
from .entries import check_line, line_bytes, posting_tuples
from .keys import KeySet


def apply_postings(balances: dict[str, int], postings, index: int) -> None:
    """Replay one entry's postings, (source, destination, amount) each, in order.

    Raises VerificationError naming seq `index` when, after the entry, a
    source account that may not go negative (accounts.may_go_negative) is
    below zero; the postings have been applied by then (journal/integrity.py
    replays on from there). An account absent from `balances` has a zero
    balance: accounts back at zero are dropped, so memory follows the accounts
    that hold money, not every account the log ever named.
    """
    touched = []
    for source, destination, amount in postings:
        balances[source] = balances.get(source, 0) - amount
        balances[destination] = balances.get(destination, 0) + amount
        touched.append(source)
        touched.append(destination)
    for account in touched[::2]:
        if balances[account] < 0 and not may_go_negative(account):
            raise VerificationError(f"account {account} goes negative ({balances[account]} fen); only "
                                    f"{TREASURY_PREFIX}* accounts may", seq=index)
    for account in touched:
        if balances.get(account, 1) == 0:
            del balances[account]


@dataclass(frozen=True)
class Summary:
    entries: int                 # lines verified
    checkpoint_size: int
    root: str                    # base64 root at the checkpoint's size (= the checkpoint's root)
    cosigned_by: tuple[str, ...]  # regions whose signature on the checkpoint verified
    accounts: int                # accounts with a non-zero balance after the replay (they sum to zero)
    previous_size: int | None = None

    def text(self) -> str:
        parts = [f"ok: {self.entries} entries verified (canonical, gapless seq, signatures and key validity, "
                 f"postings replayed: none negative outside treasury, sum zero, {self.accounts} accounts with a "
                 f"non-zero balance)",
                 f"checkpoint of size {self.checkpoint_size}, root {self.root}, cosigned by "
                 f"{', '.join(self.cosigned_by)}"]
        if self.previous_size is not None:
            parts.append(f"extends the previous checkpoint of size {self.previous_size}")
        return "; ".join(parts)


_sha256 = hashlib.sha256


class RunningTree:
    """RFC 9162 roots of every prefix, from an O(log n) stack of perfect subtrees.

    The stack holds one subtree per set bit of `size`, largest first: appending
    a leaf merges it with one subtree per trailing one bit of the old size.
    """

    def __init__(self):
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        stack, size, current = self._stack, self.size, leaf
        while size & 1:
            current = _sha256(merkle.NODE_PREFIX + stack.pop() + current).digest()
            size >>= 1
        stack.append(current)
        self.size += 1

    def root(self) -> bytes:
        return merkle.fold(self._stack) if self._stack else merkle.EMPTY_ROOT

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The stack, largest subtree first: with `size`, all a follower keeps of the tree (follow.py)."""
        return tuple(self._stack)

    @classmethod
    def resume(cls, size: int, hashes) -> "RunningTree":
        """The tree of `size` leaves whose stack is `hashes` (as `hashes` gave them)."""
        hashes = list(hashes)
        if size < 0 or len(hashes) != bin(size).count("1") or any(
                not isinstance(h, bytes) or len(h) != merkle.HASH_SIZE for h in hashes):
            raise ValueError(f"a tree of size {size} is one 32-byte hash per set bit of its size")
        tree = cls()
        tree.size, tree._stack = size, hashes
        return tree


class Replay:
    """What needs the entries in seq order: balances, the running tree, and the
    roots and last timestamps at the checkpoints' sizes; then the final checks."""

    def __init__(self, checkpoint_note: str, keys: KeySet, previous_checkpoint_note: str | None):
        self.keys = keys
        self.checkpoint, self.signers = open_checkpoint(checkpoint_note, keys)
        self.previous = self.previous_signers = None
        if previous_checkpoint_note is not None:
            self.previous, self.previous_signers = open_checkpoint(previous_checkpoint_note, keys,
                                                                   where="previous checkpoint")
            if self.previous.size > self.checkpoint.size:
                raise VerificationError(f"its size {self.previous.size} is larger than the checkpoint's "
                                        f"{self.checkpoint.size}: the log would have shrunk",
                                        where="previous checkpoint")
        self.wanted = {self.checkpoint.size} | ({self.previous.size} if self.previous else set())
        self.roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in self.wanted else {}
        self.last_ts: dict[int, str] = {}
        self.tree = RunningTree()
        self.balances: dict[str, int] = {}

    def entry(self, index: int, postings, leaf: bytes, ts: str) -> None:
        """The checked entry at `index` (the next one), its postings as (source, destination, amount)."""
        if postings:
            apply_postings(self.balances, postings, index)
        tree = self.tree
        tree.append(leaf)
        if tree.size in self.wanted:
            self.roots[tree.size] = tree.root()
            self.last_ts[tree.size] = ts

    def chunk(self, first: int, leaves: bytes, postings: list, ts_at: dict[int, str]) -> None:
        """A worker's checked lines from `first` on: leaf hashes end to end, (index, postings) of those
        that have postings, and the ts of the entries that end at a wanted size."""
        balances = self.balances
        for index, entry_postings in postings:
            apply_postings(balances, entry_postings, index)
        tree, wanted = self.tree, self.wanted
        append = tree.append
        for start in range(0, len(leaves), merkle.HASH_SIZE):
            append(leaves[start:start + merkle.HASH_SIZE])
            if tree.size in wanted:
                self.roots[tree.size] = tree.root()
                self.last_ts[tree.size] = ts_at[tree.size]

    def finish(self) -> Summary:
        checkpoint, previous, roots = self.checkpoint, self.previous, self.roots
        if self.tree.size < checkpoint.size:
            raise VerificationError(f"the export has {self.tree.size} entries but the checkpoint covers "
                                    f"{checkpoint.size}: it is truncated", where="checkpoint")
        if roots[checkpoint.size] != checkpoint.root_hash:
            raise VerificationError(
                f"the root of the first {checkpoint.size} entries is {b64(roots[checkpoint.size])}, the signed "
                f"checkpoint says {b64(checkpoint.root_hash)}", where="checkpoint")
        cosigned = check_cosigners(self.signers, self.keys, last_ts=self.last_ts.get(checkpoint.size),
                                   require_active=True)
        if previous is not None:
            if roots[previous.size] != previous.root_hash:
                raise VerificationError(
                    f"the export's root at size {previous.size} is {b64(roots[previous.size])}, the previous "
                    f"checkpoint says {b64(previous.root_hash)}: the new tree does not extend it",
                    where="previous checkpoint")
            check_cosigners(self.previous_signers, self.keys, last_ts=self.last_ts.get(previous.size),
                            require_active=False, where="previous checkpoint")
        total = sum(self.balances.values())
        if total != 0:  # cannot happen with two-sided postings; checked because DESIGN §3 promises it
            raise VerificationError(f"balances sum to {total} fen, not zero")
        return Summary(entries=self.tree.size, checkpoint_size=checkpoint.size, root=b64(checkpoint.root_hash),
                       cosigned_by=tuple(cosigned), accounts=len(self.balances),
                       previous_size=previous.size if previous else None)


def verify_export(lines: Iterable[bytes], checkpoint_note: str, keys: KeySet,
                  previous_checkpoint_note: str | None = None) -> Summary:
    """Verify an export against a signed checkpoint (and optionally a previous one), in this process."""
    replay = Replay(checkpoint_note, keys, previous_checkpoint_note)
    for index, line in enumerate(lines):
        line = line_bytes(line)
        entry = check_line(line, index, keys)
        replay.entry(index, posting_tuples(entry), _sha256(merkle.LEAF_PREFIX + line).digest(), entry["ts"])
    return replay.finish()
