"""Ed25519 signing of entries, private keys encrypted at rest, and the one
signature check of the service.

Signing (key generation, PEM encryption at rest, signatures) uses
`cryptography` (OpenSSL). Every signature *check* goes through
`verify_detached` below, libsodium (PyNaCl, maintained by PyCA like
`cryptography`): entries in the offline verifier and in the database's
integrity check (`verify_entry_signature`), checkpoints and other signed notes
(`note.Verifier`), reconciliation statements. One library decides what
verifies, so the service and an auditor cannot disagree about a signature
because two libraries drew the line differently; libsodium is also about
twice as fast here as OpenSSL.

Where they differ: libsodium accepts a subset of what OpenSSL accepts. Both
require S < L and use the cofactorless equation over the same hash; libsodium
also refuses small-order R, and small-order or non-canonically encoded public
keys (libsodium's crypto_sign/ed25519/ref10/open.c; ChangeLog 1.0.16), which
is what makes it refuse the forgery OpenSSL accepts for a small-order key
(tests/unit/ledger/test_verify_jobs.py). No honestly made key or signature is
affected, so what we sign verifies unchanged with stock tooling (Go's
crypto/ed25519 under golang.org/x/mod/sumdb/note, tests/e2e/test_go_tooling.py).
`sodium_accepts_public_key` lets a loader refuse such a key up front.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
from nacl.exceptions import BadSignatureError

from .canonical import canonical_bytes
from .entry import SIGNATURE_ALG, Entry, signed_json


def key_fingerprint(public_key_raw: bytes) -> str:
    return hashlib.sha256(public_key_raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, key_id_prefix: str) -> "SigningKey":
        private_key = Ed25519PrivateKey.generate()
        raw = public_raw(private_key.public_key())
        return cls(f"{key_id_prefix}-{key_fingerprint(raw)}", private_key)

    @property
    def public_key_raw(self) -> bytes:
        return public_raw(self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def encrypted_pem(self, passphrase: str) -> bytes:
        if not passphrase:
            raise ValueError("a passphrase is required to store a private key")
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
        )

    @classmethod
    def from_encrypted_pem(cls, key_id: str, pem: bytes, passphrase: str) -> "SigningKey":
        # A wrong passphrase raises ValueError from cryptography: callers turn
        # that into a clear start-up error rather than a traceback.
        key = serialization.load_pem_private_key(pem, password=passphrase.encode("utf-8"))
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"key {key_id} is not an Ed25519 key")
        return cls(key_id, key)


def public_raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_entry(entry: Entry, key: SigningKey) -> bytes:
    """Sign an entry and return the canonical bytes of the whole signed entry."""
    signature = key.sign(entry.signing_bytes())
    return canonical_bytes(signed_json(entry, key.key_id, base64.b64encode(signature).decode("ascii")))


def verify_entry_signature(entry_json: dict, public_key_raw: bytes) -> bool:
    sig = entry_json.get("sig")
    if not isinstance(sig, dict) or sig.get("alg") != SIGNATURE_ALG:
        return False
    value = sig.get("value")
    try:
        signature = base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        return False
    # One signature, one spelling: otherwise the same signed entry could be
    # written as two different lines with two different leaf hashes.
    if base64.b64encode(signature).decode("ascii") != value:
        return False
    unsigned = {k: v for k, v in entry_json.items() if k != "sig"}
    try:
        message = canonical_bytes(unsigned)
    except (ValueError, TypeError):
        return False
    return isinstance(public_key_raw, bytes) and verify_detached(signature, message, public_key_raw)


def sodium_accepts_public_key(public_key_raw: bytes) -> bool:
    """libsodium's test of an Ed25519 public key: 32 bytes, a canonical encoding
    of a curve point that is not of small order and lies in the prime-order
    subgroup. Every key made by Ed25519 key generation passes; libsodium's
    verification refuses every key that fails the first three (the fourth is
    stricter than verification needs, and no generated key fails it)."""
    return (isinstance(public_key_raw, bytes) and len(public_key_raw) == 32
            and bool(crypto_core_ed25519_is_valid_point(public_key_raw)))


def verify_detached(signature: bytes, message: bytes, public_key_raw: bytes) -> bool:
    """Ed25519 verification of `signature` over `message` by libsodium
    (crypto_sign_open, i.e. crypto_sign_verify_detached on signature || message)."""
    if len(signature) != 64 or len(public_key_raw) != 32:
        return False
    try:
        crypto_sign_open(signature + message, public_key_raw)
    except BadSignatureError:
        return False
    return True
