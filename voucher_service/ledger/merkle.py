"""RFC 9162 §2.1 Merkle tree math: hashing, roots, proofs and their verification.

Pure functions over bytes and integers. Storage is someone else's business:
the functions that need stored hashes take a `read_nodes` callable that
returns the hashes of the requested nodes in one batch.

A node (level, index) is the hash of the perfect subtree over leaves
[index * 2^level, (index + 1) * 2^level). Every RFC 9162 subtree of a tree of
any size is a right fold of at most log2(n) such nodes, so a root or a proof
needs O(log n) stored hashes and no rehashing of the log.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]
NodeReader = Callable[[Sequence[Node]], Sequence[bytes]]


MAX_LEVEL = 63


def node_key(node: Node) -> int:
    """One integer per node, for storage: idx * 64 + level."""
    level, index = node
    return (index << 6) | level


def leaf_hash(entry_bytes: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two strictly less than `size` (RFC 9162 §2.1.1's k)."""
    if size < 2:
        raise ValueError("a tree of fewer than two leaves has no split")
    return 1 << ((size - 1).bit_length() - 1)


def subtree_nodes(lo: int, hi: int) -> list[Node]:
    """The perfect nodes, left to right, whose right fold is MTH(D[lo:hi])."""
    nodes = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo % (1 << level):
            raise ValueError(f"[{lo}, {hi}) is not a subtree of an RFC 9162 tree")
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, iteratively in memory (for verifiers and tests)."""
    if not leaves:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []  # (level, hash) of completed perfect subtrees
    for leaf in leaves:
        level, current = 0, leaf
        while stack and stack[-1][0] == level:
            current = node_hash(stack.pop()[1], current)
            level += 1
        stack.append((level, current))
    return fold([h for _level, h in stack])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as leaf ranges, leaf-to-root order."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    ranges, lo, hi, m = [], 0, size, index
    while hi - lo > 1:
        k = split_point(hi - lo)
        if m < k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m = lo + k, m - k
    return ranges[::-1]


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[0:second]) as leaf ranges."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    ranges, lo, hi, m, whole = [], 0, second, first, True
    while hi - lo != m:
        k = split_point(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        ranges.append((lo, hi))
    return ranges[::-1]


def hashes_of_ranges(ranges: Sequence[tuple[int, int]], read_nodes: NodeReader) -> list[bytes]:
    """Subtree hashes of many ranges with one batched read of stored nodes."""
    per_range = [subtree_nodes(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for nodes in per_range for node in nodes})
    stored = dict(zip(wanted, read_nodes(wanted)))
    return [fold([stored[node] for node in nodes]) for nodes in per_range]


def root(size: int, read_nodes: NodeReader) -> bytes:
    return hashes_of_ranges([(0, size)], read_nodes)[0] if size else EMPTY_ROOT


def aligned_nodes(lo: int, hi: int) -> list[Node]:
    """The perfect nodes that tile [lo, hi), largest first from the left: the
    maximal ones, since two perfect nodes are either nested or disjoint."""
    nodes = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def perfect_nodes(start: int, leaves: Sequence[bytes]) -> dict[Node, bytes]:
    """Every perfect node inside [start, start + len(leaves)), leaves included,
    computed from `leaves`: what a store must hold there."""
    nodes: dict[Node, bytes] = {}
    level, first, hashes = 0, start, list(leaves)
    while hashes:
        nodes.update(((level, first + i), h) for i, h in enumerate(hashes))
        skip = first & 1  # a right child whose left sibling lies outside the range
        paired = hashes[skip:]
        hashes = [node_hash(paired[i], paired[i + 1]) for i in range(0, len(paired) - 1, 2)]
        level, first = level + 1, (first + skip) >> 1
    return nodes


def _perfect_root(hashes: Sequence[bytes]) -> bytes:
    """MTH of a perfect subtree (a power of two of leaves), level by level."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def root_with_leaves(size: int, start: int, leaves: Sequence[bytes], read_nodes: NodeReader, *,
                     inside: dict[Node, bytes] | None = None) -> bytes:
    """MTH(D[0:size]) from `leaves` (those of [start, start + len(leaves)),
    hashed by the caller from the entries themselves) and, for every subtree
    outside that range, the stored node: O(log size) stored nodes, read in one
    batch. Equal to a signed root, it proves those entries are what was signed;
    the stored nodes it used are proven only together with them. `inside`:
    perfect_nodes(start, leaves), if the caller has it, saves rehashing them."""
    end = start + len(leaves)
    if not 0 <= start <= end <= size:
        raise ValueError(f"leaves [{start}, {end}) are not in a tree of size {size}")
    if size == 0:
        return EMPTY_ROOT
    known: dict[Node, bytes] = {}
    offset = 0
    for level, index in aligned_nodes(start, end):
        known[(level, index)] = (inside[(level, index)] if inside is not None
                                 else _perfect_root(leaves[offset:offset + (1 << level)]))
        offset += 1 << level
    stored: list[Node] = []

    def plan(node: Node) -> None:
        level, index = node
        lo, hi = index << level, (index + 1) << level
        if node in known:
            return
        if hi <= start or lo >= end:
            stored.append(node)
            return
        plan((level - 1, 2 * index))
        plan((level - 1, 2 * index + 1))

    top = subtree_nodes(0, size)
    for node in top:
        plan(node)
    if stored:
        known.update(zip(stored, read_nodes(stored)))

    def value(node: Node) -> bytes:
        if node in known:
            return known[node]
        level, index = node
        return node_hash(value((level - 1, 2 * index)), value((level - 1, 2 * index + 1)))

    return fold([value(node) for node in top])


def inclusion_proof(index: int, size: int, read_nodes: NodeReader) -> list[bytes]:
    return hashes_of_ranges(inclusion_ranges(index, size), read_nodes)


def consistency_proof(first: int, second: int, read_nodes: NodeReader) -> list[bytes]:
    return hashes_of_ranges(consistency_ranges(first, second), read_nodes)


def left_siblings_for_append(index: int) -> list[Node]:
    """Stored nodes needed to store every node that leaf `index` completes."""
    size, level, siblings = index + 1, 1, []
    while size % (1 << level) == 0:
        siblings.append((level - 1, ((size >> level) - 1) * 2))
        level += 1
    return siblings


def nodes_for_append(index: int, leaf: bytes, read_nodes: NodeReader) -> list[tuple[Node, bytes]]:
    """The nodes to store when leaf `index` is appended: the leaf, then every
    perfect subtree it completes (as Go's tlog.StoredHashes)."""
    siblings = left_siblings_for_append(index)
    left_hashes = read_nodes(siblings) if siblings else []
    stored, current = [((0, index), leaf)], leaf
    for (level, left_index), left in zip(siblings, left_hashes):
        current = node_hash(left, current)
        stored.append(((level + 1, left_index // 2), current))
    return stored


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(p, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and result == expected_root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is the first node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root
