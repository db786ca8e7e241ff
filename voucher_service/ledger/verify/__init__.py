"""The offline verifier: an export, a checkpoint and the public keys, nothing else.

    python -m voucher_service.ledger.verify export EXPORT --checkpoint FILE --keys FILE \\
        [--previous-checkpoint FILE] [--jobs N] [--policy FILE]
    python -m voucher_service.ledger.verify receipt FILE --keys FILE [--policy FILE]

The files are exactly as served by GET /ledger/export, /ledger/checkpoint,
/ledger/keys and /ledger/receipts/{seq}. This package needs the standard
library, PyNaCl (libsodium: every signature check, see ../signing.py),
`cryptography` (imported by ../signing.py, which also signs) and the rest of
the `ledger` package: no Flask, no database, so an auditor can copy the
`ledger` folder and run it alone.

What an export must satisfy (DESIGN §3 and §4), checked entry by entry in one
pass and in constant memory (one line at a time; the running Merkle tree is an
O(log n) stack of perfect-subtree hashes; balances are one integer per account
with a non-zero balance, an account back at zero is forgotten):

- every line is its own RFC 8785 canonical form, UTF-8, of a version-1 entry
  of the documented shape, and `seq` runs 0, 1, 2, ... without gap;
- its signature is by the key named in `sig.key_id`, a published key of the
  entry's region, valid at the entry's `ts`;
- postings are positive integers between two different accounts; replayed
  balances never take an account outside `treasury:` below zero, and all
  balances sum to zero;
- the root of the first `size` lines equals the signed checkpoint's root, the
  checkpoint's origin is the keys' origin, every signature on it by a
  published key verifies (lines by other keys, such as witnesses'
  cosignatures, are ignored), and the keys that had to sign it did: the log
  key if it covers an entry from the upgrade to witnessed checkpoints on
  (the log key's valid_from), otherwise the log key or every region with a
  key valid at its newest entry (checkpoint.py);
- given a previous checkpoint, it verifies too and the export's root at its
  size equals its root, which proves the new tree extends it;
- given a policy (ledger/policy.py), both checkpoints are signed by one of
  its log keys and cosigned by its quorum of witnesses.

The first failure stops the check and is raised as a VerificationError naming
the `seq` (or "checkpoint", "previous checkpoint", "keys", "policy", "receipt").

With `--jobs N` (N > 1; 0 = one per CPU) the per-line checks (UTF-8,
canonical form, shape, key validity, signature, leaf hash) run in N worker
processes over chunks of the file cut at line boundaries, while this process
replays seq order, balances and the running tree from their compact results,
chunk by chunk in file order: the same checks, the same first failing seq and
message, a bounded number of chunks in flight.

Modules: keys (the published keys), checkpoint, entries (one line's checks),
replay (balances and the running tree; `apply_postings` is the project's
one posting replay), parallel (--jobs), receipts, files, cli and __main__;
common holds the error and the value checks they share. The names below are
the package's interface.
"""
from __future__ import annotations

from ..entry import TIMESTAMP, TIMESTAMP_FORMAT
from .checkpoint import Signed, check_policy, check_signers, load_policy_file, open_checkpoint
from .cli import main, verify_export_files
from .common import MAX_LINE_BYTES, VerificationError
from .entries import SIGNATURE_B64, check_entry
from .files import read_json, read_lines, read_text
from .keys import KeySet, PublishedKey, load_keys, load_keys_file
from .parallel import CHUNK_BYTES, cpu_jobs, verify_export_parallel
from .receipts import receipt_text, verify_receipt, verify_receipt_file
from .replay import Summary, apply_postings, verify_export

__all__ = [
    "CHUNK_BYTES", "MAX_LINE_BYTES", "SIGNATURE_B64", "TIMESTAMP", "TIMESTAMP_FORMAT",
    "KeySet", "PublishedKey", "Signed", "Summary", "VerificationError",
    "apply_postings", "check_entry", "check_policy", "check_signers", "cpu_jobs", "load_keys", "load_keys_file",
    "load_policy_file", "main",
    "open_checkpoint", "read_json", "read_lines", "read_text", "receipt_text", "verify_export",
    "verify_export_files", "verify_export_parallel", "verify_receipt", "verify_receipt_file",
]
