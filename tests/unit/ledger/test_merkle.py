"""RFC 9162 Merkle tree math: known answers, an independent implementation, and
an independent verifier written here from the RFC text.

Three witnesses check `voucher_service.ledger.merkle`:

* the Certificate Transparency reference vectors (roots of the 8-leaf tree and
  its prefixes; inclusion and consistency proofs as in google/trillian's
  merkle/log_verifier_test.go, which quotes the CT C++ tests);
* pymerkle, an independent implementation (a test-only dependency), for every
  size 0..100 and some larger ones;
* `ref_*` and `rfc_verify_*` below: RFC 9162 §2.1.1 MTH, §2.1.3.1 PATH,
  §2.1.4.1 PROOF/SUBPROOF transcribed as the recursive definitions, and the
  §2.1.3.2 / §2.1.4.2 verification algorithms transcribed step by step. They
  import nothing from the service. (tests/unit/ledger/test_vectors.py imports
  them to check the published vectors.)

The proofs under test are computed the way the service computes them: from
stored nodes (filled by `merkle.nodes_for_append`) through a `read_nodes`
callable, whose reads are counted to hold the O(log n) promise of DESIGN §4.
"""
from __future__ import annotations

import hashlib
import math
import random
from functools import lru_cache

import pytest
from pymerkle import InmemoryTree

from voucher_service.ledger import merkle

# --- the independent reference (RFC 9162 §2.1), no service imports ----------


def ref_leaf_hash(data: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0)."""
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || MTH(left) || MTH(right))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaf_hashes: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 over already-hashed leaves."""
    n = len(leaf_hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hashes[0]
    k = _k(n)
    return ref_node_hash(ref_mth(leaf_hashes[:k]), ref_mth(leaf_hashes[k:]))


def ref_path(m: int, leaf_hashes: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(leaf_hashes)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, leaf_hashes[:k]) + [ref_mth(leaf_hashes[k:])]
    return ref_path(m - k, leaf_hashes[k:]) + [ref_mth(leaf_hashes[:k])]


def ref_proof(m: int, leaf_hashes: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true); empty when
    m is 0 or n (the RFC defines 0 < m < n; the edges are what every
    implementation serves)."""
    if m == 0 or m == len(leaf_hashes):
        return []
    return _ref_subproof(m, leaf_hashes, True)


def _ref_subproof(m: int, leaf_hashes: list[bytes], b: bool) -> list[bytes]:
    n = len(leaf_hashes)
    if m == n:
        return [] if b else [ref_mth(leaf_hashes)]
    k = _k(n)
    if m <= k:
        return _ref_subproof(m, leaf_hashes[:k], b) + [ref_mth(leaf_hashes[k:])]
    return _ref_subproof(m - k, leaf_hashes[k:], False) + [ref_mth(leaf_hashes[:k])]


def rfc_verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes, inclusion_path: list[bytes],
                         root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    # 1. Compare leaf_index from the inclusion_proof against tree_size. If
    #    leaf_index is greater than or equal to tree_size, then fail.
    if leaf_index < 0 or leaf_index >= tree_size:
        return False
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # 3. Set r to hash.
    r = leaf_hash
    # 4. For each value p in the inclusion_path array:
    for p in inclusion_path:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn % 2 == 1 or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = ref_node_hash(p, r)
            # ii. If LSB(fn) is not set, then right-shift both fn and sn
            #     equally until either LSB(fn) is set or fn is 0.
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        # Otherwise:
        else:
            # i. Set r to HASH(0x01 || r || p).
            r = ref_node_hash(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn //= 2
        sn //= 2
    # 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0
    #    and r and the root_hash are equal, then the log has proven the
    #    inclusion of hash. Otherwise, fail the proof verification.
    return sn == 0 and r == root_hash


def rfc_verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                           consistency_path: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2, step by step (with the 0 and first == second edges
    handled as Go's sumdb/tlog and transparency-dev/merkle do)."""
    if first < 0 or first > second:
        return False
    if first == second:
        return not consistency_path and first_hash == second_hash
    if first == 0:
        return not consistency_path
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not consistency_path:
        return False
    path = list(consistency_path)
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first & (first - 1) == 0:
        path = [first_hash] + path
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn % 2 == 1 or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).  ii. Set sr to HASH(0x01 || c || sr).
            fr = ref_node_hash(c, fr)
            sr = ref_node_hash(c, sr)
            # iii. If LSB(fn) is not set, then right-shift both fn and sn
            #      equally until either LSB(fn) is set or fn is 0.
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        # Otherwise: i. Set sr to HASH(0x01 || sr || c).
        else:
            sr = ref_node_hash(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn //= 2
        sn //= 2
    # 7. Verify that fr equals first_hash, sr equals second_hash, and sn is 0.
    return sn == 0 and fr == first_hash and sr == second_hash


# --- known answers -------------------------------------------------------------

CT_LEAF_INPUTS = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
CT_LEAVES = [ref_leaf_hash(d) for d in CT_LEAF_INPUTS]

# MTH of the first n leaves, n = 0..8 (CT reference tests; also in trillian's
# merkle/log_verifier_test.go and the CT Python client's merkle_test.py).
CT_ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]


def _hexes(*values: str) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# (0-based leaf index, tree size, proof), from trillian's log_verifier_test.go
# (which numbers leaves from 1).
CT_INCLUSION_PROOFS = [
    (0, 8, _hexes("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (5, 8, _hexes("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 3, _hexes("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (1, 5, _hexes("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
]
CT_CONSISTENCY_PROOFS = [
    (1, 1, []),
    (1, 8, _hexes("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, _hexes("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 5, _hexes("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
]


# --- an in-memory node store, filled the way the service fills its table -------

class NodeStore:
    """(level, index) -> hash, written only by merkle.nodes_for_append."""

    def __init__(self):
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def read(self, wanted):
        return [self.nodes[tuple(node)] for node in wanted]

    def append(self, leaf: bytes) -> None:
        for node, value in merkle.nodes_for_append(self.size, leaf, self.read):
            assert node not in self.nodes, f"node {node} written twice"
            self.nodes[node] = value
        self.size += 1


def store_of(leaves) -> NodeStore:
    store = NodeStore()
    for leaf in leaves:
        store.append(leaf)
    return store


def leaves_for(n: int, tag: bytes = b"entry") -> list[bytes]:
    return [ref_leaf_hash(tag + b" %d" % i) for i in range(n)]


MAX_EXHAUSTIVE = 64
LEAVES_64 = leaves_for(MAX_EXHAUSTIVE)
STORE_64 = store_of(LEAVES_64)
ROOTS_64 = [ref_mth(LEAVES_64[:n]) for n in range(MAX_EXHAUSTIVE + 1)]


# --- known answers ---------------------------------------------------------------

def test_ct_reference_roots():
    store = store_of(CT_LEAVES)
    assert merkle.leaf_hash(b"") == bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert merkle.root_from_leaves(CT_LEAVES).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    for n, expected in enumerate(CT_ROOTS):
        assert ref_mth(CT_LEAVES[:n]) == expected, n  # the reference itself is right
        assert merkle.root_from_leaves([merkle.leaf_hash(d) for d in CT_LEAF_INPUTS[:n]]) == expected, n
        assert merkle.root(n, store.read) == expected, n


@pytest.mark.parametrize("index, size, expected", CT_INCLUSION_PROOFS)
def test_ct_reference_inclusion_proofs(index, size, expected):
    store = store_of(CT_LEAVES)
    assert ref_path(index, CT_LEAVES[:size]) == expected
    assert merkle.inclusion_proof(index, size, store.read) == expected
    assert merkle.verify_inclusion(index, size, CT_LEAVES[index], expected, CT_ROOTS[size])
    assert rfc_verify_inclusion(index, size, CT_LEAVES[index], expected, CT_ROOTS[size])


@pytest.mark.parametrize("first, second, expected", CT_CONSISTENCY_PROOFS)
def test_ct_reference_consistency_proofs(first, second, expected):
    store = store_of(CT_LEAVES)
    assert ref_proof(first, CT_LEAVES[:second]) == expected
    assert merkle.consistency_proof(first, second, store.read) == expected
    assert merkle.verify_consistency(first, second, CT_ROOTS[first], CT_ROOTS[second], expected)
    assert rfc_verify_consistency(first, second, CT_ROOTS[first], CT_ROOTS[second], expected)


# --- pymerkle, an independent implementation ------------------------------------------

def pymerkle_tree(entries) -> InmemoryTree:
    # Default InmemoryTree: sha256 with the RFC 9162 prefixes (leaf 0x00 || data,
    # node 0x01 || left || right), i.e. security mode on; the CT root below
    # proves that configuration before any comparison relies on it.
    tree = InmemoryTree(algorithm="sha256")
    for data in entries:
        tree.append_entry(data)
    return tree


def test_pymerkle_is_configured_as_rfc9162():
    tree = pymerkle_tree(CT_LEAF_INPUTS)
    assert tree.get_root().hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    for n, expected in enumerate(CT_ROOTS):
        assert tree.get_root(n) == expected


def test_roots_of_every_size_to_100_match_pymerkle():
    entries = [b"ledger line %d " % i + bytes(range(i % 7)) for i in range(100)]
    tree = pymerkle_tree(entries)
    store = store_of([merkle.leaf_hash(e) for e in entries])
    leaves = [merkle.leaf_hash(e) for e in entries]
    for n in range(0, 101):
        expected = tree.get_root(n)
        assert merkle.root(n, store.read) == expected, n
        assert merkle.root_from_leaves(leaves[:n]) == expected, n


@pytest.mark.parametrize("size", [127, 128, 129, 1023, 1024, 1025, *random.Random(9162).sample(range(130, 3000), 4)])
def test_larger_roots_match_pymerkle(size):
    rng = random.Random(size)
    entries = [rng.randbytes(rng.randrange(0, 40)) for _ in range(size)]
    tree = pymerkle_tree(entries)
    leaves = [merkle.leaf_hash(e) for e in entries]
    store = store_of(leaves)
    for n in {size, size - 1, size // 2, size // 3 + 1}:
        assert merkle.root(n, store.read) == tree.get_root(n), n
    assert merkle.root_from_leaves(leaves) == tree.get_root()


# --- the stored nodes ------------------------------------------------------------------

def test_nodes_for_append_stores_exactly_the_complete_subtrees():
    for size in range(0, MAX_EXHAUSTIVE + 1):
        store = store_of(LEAVES_64[:size])
        expected = {}
        level = 0
        while (1 << level) <= size:
            width = 1 << level
            for index in range(size // width):
                expected[(level, index)] = ref_mth(LEAVES_64[index * width:(index + 1) * width])
            level += 1
        assert store.nodes == expected, size


# --- every proof up to 64 leaves, checked by both verifiers ----------------------------------

def flip_bit(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    return bytes(data)


def corrupted_proofs(proof: list[bytes], root: bytes):
    """Proofs that must never verify: named so a failure says which."""
    for j, item in enumerate(proof):
        for bit in (0, 131, 255):
            yield f"bit {bit} of hash {j} flipped", proof[:j] + [flip_bit(item, bit)] + proof[j + 1:]
        yield f"hash {j} dropped", proof[:j] + proof[j + 1:]
        if j + 1 < len(proof) and proof[j] != proof[j + 1]:
            yield f"hashes {j} and {j + 1} swapped", proof[:j] + [proof[j + 1], proof[j]] + proof[j + 2:]
    yield "extra hash appended", proof + [hashlib.sha256(b"extra").digest()]
    yield "root appended", proof + [root]
    yield "extra hash prepended", [hashlib.sha256(b"extra").digest()] + proof
    if proof:
        yield "last hash repeated", proof + [proof[-1]]
        yield "first hash repeated", [proof[0]] + proof
        if proof != proof[::-1]:
            yield "reversed", proof[::-1]
    else:
        yield "empty hash appended", [b""]


def both_verify_inclusion(index, size, leaf, proof, root) -> bool:
    ours = merkle.verify_inclusion(index, size, leaf, proof, root)
    theirs = rfc_verify_inclusion(index, size, leaf, proof, root)
    assert ours == theirs, (index, size, "the two verifiers disagree")
    return ours


def both_verify_consistency(first, second, first_root, second_root, proof) -> bool:
    ours = merkle.verify_consistency(first, second, first_root, second_root, proof)
    theirs = rfc_verify_consistency(first, second, first_root, second_root, proof)
    assert ours == theirs, (first, second, "the two verifiers disagree")
    return ours


INCLUSION_CASES = [(i, n) for n in range(1, MAX_EXHAUSTIVE + 1) for i in range(n)]
CONSISTENCY_CASES = [(m, n) for n in range(0, MAX_EXHAUSTIVE + 1) for m in range(0, n + 1)]


def test_every_inclusion_proof_to_64_leaves():
    for index, size in INCLUSION_CASES:
        proof = merkle.inclusion_proof(index, size, STORE_64.read)
        assert proof == ref_path(index, LEAVES_64[:size]), (index, size)
        assert both_verify_inclusion(index, size, LEAVES_64[index], proof, ROOTS_64[size]), (index, size)


def test_every_consistency_proof_to_64_leaves():
    for first, second in CONSISTENCY_CASES:
        proof = merkle.consistency_proof(first, second, STORE_64.read)
        assert proof == ref_proof(first, LEAVES_64[:second]), (first, second)
        assert both_verify_consistency(first, second, ROOTS_64[first], ROOTS_64[second], proof), (first, second)


def test_corrupted_inclusion_proofs_are_rejected_by_both_verifiers():
    for index, size in INCLUSION_CASES:
        proof = merkle.inclusion_proof(index, size, STORE_64.read)
        leaf, root = LEAVES_64[index], ROOTS_64[size]
        for what, bad in corrupted_proofs(proof, root):
            assert not both_verify_inclusion(index, size, leaf, bad, root), (index, size, what)
        assert not both_verify_inclusion(index, size, leaf, proof, flip_bit(root, 7)), (index, size, "wrong root")
        assert not both_verify_inclusion(index, size, flip_bit(leaf, 0), proof, root), (index, size, "wrong leaf")
        if index + 1 < size:
            assert not both_verify_inclusion(index, size, LEAVES_64[index + 1], proof, root), (index, size)
        for wrong in {index - 1, index + 1, index ^ 1, index ^ 2, size, size + 1, -1} - {index}:
            assert not both_verify_inclusion(wrong, size, leaf, proof, root), (index, size, "wrong index", wrong)
        # A wrong size, with the true root of that size: a proof for one tree
        # does not verify in another unless it *is* that tree's proof too.
        for wrong in {size - 1, size + 1, size * 2, size // 2} - {size}:
            if 0 < wrong <= MAX_EXHAUSTIVE:
                expected = index < wrong and ref_path(index, LEAVES_64[:wrong]) == proof
                got = both_verify_inclusion(index, wrong, leaf, proof, ROOTS_64[wrong])
                assert got == expected, (index, size, "wrong size", wrong)


def test_corrupted_consistency_proofs_are_rejected_by_both_verifiers():
    for first, second in CONSISTENCY_CASES:
        proof = merkle.consistency_proof(first, second, STORE_64.read)
        r1, r2 = ROOTS_64[first], ROOTS_64[second]
        for what, bad in corrupted_proofs(proof, r2):
            assert not both_verify_consistency(first, second, r1, r2, bad), (first, second, what)
        if 0 < first:
            assert not both_verify_consistency(first, second, flip_bit(r1, 3), r2, proof), (first, second, "root 1")
            assert not both_verify_consistency(first, second, r1, flip_bit(r2, 3), proof), (first, second, "root 2")
        if 0 < first < second:
            assert not both_verify_consistency(first, second, r2, r1, proof), (first, second, "roots swapped")
            assert not both_verify_consistency(first, second, r1, r2, []), (first, second, "empty proof")
        # Wrong sizes, each with the true root of that size: accepted only
        # where the proof is also the proof between those sizes (empty ones).
        for wrong in {first - 1, first + 1, first ^ 2, first * 2} - {first}:
            if 0 <= wrong <= second:
                expected = ref_proof(wrong, LEAVES_64[:second]) == proof
                got = both_verify_consistency(wrong, second, ROOTS_64[wrong], r2, proof)
                assert got == expected, (first, second, "wrong first", wrong)
        for wrong in {second - 1, second + 1, second * 2, second // 2} - {second}:
            if first <= wrong <= MAX_EXHAUSTIVE:
                expected = ref_proof(first, LEAVES_64[:wrong]) == proof
                got = both_verify_consistency(first, wrong, r1, ROOTS_64[wrong], proof)
                assert got == expected, (first, second, "wrong second", wrong)
        assert not both_verify_consistency(second + 1, second, r1, r2, proof)
        assert not both_verify_consistency(-1, second, r1, r2, proof)


def test_an_inclusion_proof_alone_does_not_bind_the_tree_size():
    """RFC 9162 property worth knowing for auditors: the proof for (0, 3)
    also 'verifies' as (0, 4) against the size-3 root, because the verifier
    only uses the size for the shape of the path. Always take the size and
    root from the same signed checkpoint."""
    proof = merkle.inclusion_proof(0, 3, STORE_64.read)
    assert both_verify_inclusion(0, 4, LEAVES_64[0], proof, ROOTS_64[3])
    assert not both_verify_inclusion(0, 4, LEAVES_64[0], proof, ROOTS_64[4])


def test_out_of_range_requests_are_refused():
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, 3, STORE_64.read)
    with pytest.raises(ValueError):
        merkle.inclusion_proof(-1, 3, STORE_64.read)
    with pytest.raises(ValueError):
        merkle.consistency_proof(4, 3, STORE_64.read)
    with pytest.raises(ValueError):
        merkle.consistency_proof(-1, 3, STORE_64.read)
    assert not both_verify_inclusion(0, 0, LEAVES_64[0], [], merkle.EMPTY_ROOT)
    assert merkle.root(0, STORE_64.read) == merkle.EMPTY_ROOT == hashlib.sha256(b"").digest()


# --- O(log n) reads, up to 2^20 leaves, without building the tree ---------------------------

PERIOD_BITS = 12  # synthetic leaves repeat every 4096: see synthetic_node


def synthetic_leaf(index: int) -> bytes:
    return hashlib.sha256(b"synthetic leaf %d" % (index % (1 << PERIOD_BITS))).digest()


@lru_cache(maxsize=None)
def _synthetic_canonical(level: int, index: int) -> bytes:
    if level == 0:
        return synthetic_leaf(index)
    return ref_node_hash(synthetic_node(level - 1, 2 * index), synthetic_node(level - 1, 2 * index + 1))


def synthetic_node(level: int, index: int) -> bytes:
    """The true RFC 9162 hash of node (level, index) of a log whose leaf i is
    synthetic_leaf(i). Leaves repeat with period 2^PERIOD_BITS, so a node at
    level l depends only on index mod 2^(PERIOD_BITS - l) (and not at all from
    PERIOD_BITS up): memoised, a tree of 2^20 leaves costs about 8192 hashes
    and no list of a million leaves is ever built."""
    if level >= PERIOD_BITS:
        return _synthetic_canonical(level, 0)
    return _synthetic_canonical(level, index % (1 << (PERIOD_BITS - level)))


class CountingReader:
    def __init__(self, size: int):
        self.size = size
        self.calls = 0
        self.nodes = 0

    def __call__(self, wanted):
        self.calls += 1
        self.nodes += len(wanted)
        for level, index in wanted:
            # Only nodes that exist in a tree of this size may be asked for.
            assert (index + 1) << level <= self.size, (level, index, self.size)
        return [synthetic_node(level, index) for level, index in wanted]


def test_synthetic_store_is_a_true_merkle_tree():
    leaves = [synthetic_leaf(i) for i in range(1 << (PERIOD_BITS + 1))]
    store = store_of(leaves[:300])
    assert all(value == synthetic_node(*node) for node, value in store.nodes.items())
    for n in (1, 5, 300, 4096, 4097, 8192):
        assert merkle.root(n, CountingReader(n)) == ref_mth(leaves[:n]), n


def _sizes():
    sizes = set()
    for k in range(0, 21):
        sizes |= {(1 << k) - 1, 1 << k, (1 << k) + 1}
    rng = random.Random(20)
    sizes |= {rng.randrange(2, 1 << 20) for _ in range(12)}
    return sorted(s for s in sizes if 1 <= s <= (1 << 20) + 1)


def read_bound(n: int) -> float:
    return 2 * math.log2(n) + 2


@pytest.mark.parametrize("size", _sizes())
def test_roots_and_proofs_read_o_log_n_stored_nodes(size):
    bound = read_bound(size)
    reader = CountingReader(size)
    root = merkle.root(size, reader)
    assert reader.calls <= 1 and reader.nodes <= bound, ("root", size, reader.nodes)

    rng = random.Random(size)
    indices = {0, size // 2, size - 1, min(1, size - 1), max(size - 2, 0), *(rng.randrange(size) for _ in range(3))}
    for index in sorted(indices):
        reader = CountingReader(size)
        proof = merkle.inclusion_proof(index, size, reader)
        assert reader.calls <= 1 and reader.nodes <= bound, ("inclusion", index, size, reader.nodes)
        leaf = synthetic_leaf(index)
        assert both_verify_inclusion(index, size, leaf, proof, root), (index, size)

    firsts = {1, 2, size // 2, size - 1, size, *(rng.randrange(1, size + 1) for _ in range(3))}
    firsts |= {1 << k for k in range(21) if 1 << k <= size}
    for first in sorted(f for f in firsts if 1 <= f <= size):
        reader = CountingReader(size)
        proof = merkle.consistency_proof(first, size, reader)
        assert reader.calls <= 1 and reader.nodes <= bound, ("consistency", first, size, reader.nodes)
        first_root = merkle.root(first, CountingReader(first))
        assert both_verify_consistency(first, size, first_root, root, proof), (first, size)

    # Appending leaf `size` reads at most log2 of the new size stored nodes.
    reader = CountingReader(size)
    merkle.nodes_for_append(size, synthetic_leaf(size), reader)
    assert reader.calls <= 1 and reader.nodes <= math.log2(size + 1), ("append", size, reader.nodes)


# --- a range of leaves rehashed from the entries, the rest of the tree from the store ---------------

def test_aligned_nodes_tile_a_range_with_its_maximal_perfect_nodes():
    for lo in range(0, 40):
        for hi in range(lo, 70):
            nodes = merkle.aligned_nodes(lo, hi)
            covered = [leaf for level, index in nodes for leaf in range(index << level, (index + 1) << level)]
            assert covered == list(range(lo, hi)), (lo, hi)
            # Maximal: no two neighbours could merge into their parent.
            for (l1, i1), (l2, i2) in zip(nodes, nodes[1:]):
                assert not (l1 == l2 and i1 % 2 == 0 and i2 == i1 + 1), (lo, hi, nodes)


def test_perfect_nodes_of_a_range_are_the_stored_ones_inside_it():
    for lo in range(0, 20):
        for hi in range(lo, MAX_EXHAUSTIVE + 1):
            inside = {node: value for node, value in STORE_64.nodes.items()
                      if node[1] << node[0] >= lo and (node[1] + 1) << node[0] <= hi}
            assert merkle.perfect_nodes(lo, LEAVES_64[lo:hi]) == inside, (lo, hi)


def test_root_with_leaves_equals_the_root_and_reads_only_nodes_outside_the_range():
    for size in range(0, MAX_EXHAUSTIVE + 1):
        for lo in range(0, size + 1):
            for hi in range(lo, size + 1):
                asked = []

                def read(wanted):
                    asked.extend(wanted)
                    return STORE_64.read(wanted)

                assert merkle.root_with_leaves(size, lo, LEAVES_64[lo:hi], read) == ROOTS_64[size], (size, lo, hi)
                for level, index in asked:
                    assert (index + 1) << level <= lo or index << level >= hi, (size, lo, hi, level, index)
                assert len(asked) <= read_bound(max(size, 2)), (size, lo, hi, asked)


def test_root_with_leaves_differs_when_any_leaf_of_the_range_or_any_stored_node_used_differs():
    size, lo, hi = 45, 13, 30
    leaves = LEAVES_64[lo:hi]
    for position in range(len(leaves)):
        edited = list(leaves)
        edited[position] = flip_bit(edited[position], 3)
        assert merkle.root_with_leaves(size, lo, edited, STORE_64.read) != ROOTS_64[size], position
    used = []
    merkle.root_with_leaves(size, lo, leaves, lambda wanted: used.extend(wanted) or STORE_64.read(wanted))
    for node in used:
        def tampered(wanted, node=node):
            return [flip_bit(value, 0) if tuple(n) == node else value for n, value in zip(wanted, STORE_64.read(wanted))]
        assert merkle.root_with_leaves(size, lo, leaves, tampered) != ROOTS_64[size], node


@pytest.mark.parametrize("size", [1 << 20, (1 << 20) + 1, 1_000_003])
def test_root_with_leaves_at_a_million_reads_o_log_n_nodes(size):
    for lo, hi in ((0, 1024), (size - 64, size), (500_000, 501_024), (123_457, 124_001)):
        reader = CountingReader(size)
        leaves = [synthetic_leaf(i) for i in range(lo, hi)]
        assert merkle.root_with_leaves(size, lo, leaves, reader) == merkle.root(size, CountingReader(size))
        assert reader.calls <= 1 and reader.nodes <= read_bound(size), (lo, hi, reader.nodes)


def test_root_with_leaves_refuses_leaves_outside_the_tree():
    with pytest.raises(ValueError):
        merkle.root_with_leaves(10, 8, LEAVES_64[:3], STORE_64.read)
