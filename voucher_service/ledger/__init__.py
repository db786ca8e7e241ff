"""The ledger: canonical entries, signatures, hashes.

This package knows bytes, keys and integers. It imports nothing of vouchers,
Flask or database sessions, so an auditor can reuse it (or read it) alone.
"""
from .canonical import canonical_bytes
from .entry import FORMAT_VERSION, Entry, Posting
from .merkle import leaf_hash, node_hash
from .signing import SigningKey, sign_entry, verify_entry_signature

__all__ = [
    "canonical_bytes", "Entry", "Posting", "FORMAT_VERSION", "leaf_hash", "node_hash",
    "SigningKey", "sign_entry", "verify_entry_signature",
]
