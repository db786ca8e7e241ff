"""`vouchers verify`, `vouchers verify-receipt` and `vouchers verify-document`: the offline verifier
as CLI commands.

Thin wrappers over `ledger.verify`: they read only the files given (as served
by /ledger/export, /ledger/checkpoint, /ledger/keys and /ledger/receipts/{seq})
and need no application context and no database. Success prints a summary and
exits 0; a failure prints "FAILED at seq N: why" (or "FAILED at checkpoint:
why", ...) to standard error and exits 1.
"""
from __future__ import annotations

import click

from voucher_service.ledger import verify
from voucher_service.ledger.verify import documents

_FILE = click.Path(dir_okay=False)  # existence is checked by the verifier: a clean FAILED, exit 1
_POLICY_HELP = ("a policy file (log, witness, group and quorum lines, docs/ledger.md): the checkpoint must also be "
                "signed by its log key and cosigned by its quorum of witnesses")


def _fail(exc: Exception) -> None:
    message = exc.report() if isinstance(exc, verify.VerificationError) else f"FAILED: {type(exc).__name__}: {exc}"
    click.echo(message, err=True)
    raise SystemExit(1)


@click.command("verify")
@click.argument("export", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--checkpoint", "checkpoint_path", required=True, type=_FILE,
              help="the signed note served by GET /ledger/checkpoint")
@click.option("--keys", "keys_path", required=True, type=_FILE, help="the JSON served by GET /ledger/keys")
@click.option("--previous-checkpoint", "previous_path", type=_FILE,
              help="an earlier checkpoint that the log must extend")
@click.option("--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="check entries in this many processes (0: one per CPU; at most 4 per CPU)")
@click.option("--policy", "policy_path", type=_FILE, help=_POLICY_HELP)
def verify_command(export, checkpoint_path, keys_path, previous_path, jobs, policy_path):
    """Verify a ledger EXPORT (GET /ledger/export, '-' for stdin) offline against a signed checkpoint.

    Checks every entry's canonical form, gapless seq, signature and key
    validity at its time, the posting invariants and replayed balances, and
    that the recomputed Merkle root is the one the checkpoint signs, signed by
    the log key (or, for entries from before witnessed checkpoints, by every
    region). With --policy, the checkpoint must satisfy the policy too. With
    --jobs N the entries are checked in N worker processes: same checks, same
    first failing seq.
    """
    try:
        summary = verify.verify_export_files(export, checkpoint_path, keys_path, previous_path, jobs=jobs,
                                             policy_path=policy_path)
    except (verify.VerificationError, ValueError, KeyError, TypeError, UnicodeError, OSError) as exc:
        _fail(exc)
    click.echo(summary.text())


@click.command("verify-receipt")
@click.argument("receipt", type=_FILE)
@click.option("--keys", "keys_path", required=True, type=_FILE, help="the JSON served by GET /ledger/keys")
@click.option("--policy", "policy_path", type=_FILE, help=_POLICY_HELP)
def verify_receipt_command(receipt, keys_path, policy_path):
    """Verify a RECEIPT (GET /ledger/receipts/{seq}) offline: the entry's signature, its inclusion
    proof and the signed checkpoint; with --policy, the checkpoint's witness quorum too."""
    try:
        result = verify.verify_receipt_file(receipt, keys_path, policy_path)
    except (verify.VerificationError, ValueError, KeyError, TypeError, UnicodeError, OSError) as exc:
        _fail(exc)
    click.echo(verify.receipt_text(result))


@click.command("verify-document")
@click.argument("document", type=_FILE)
@click.option("--entry", "entry_path", required=True, type=_FILE,
              help="the ledger entry (GET /ledger/entries/{seq}) that names the document: a claim's")
@click.option("--keys", "keys_path", type=_FILE, help="the JSON served by GET /ledger/keys: also check the "
                                                      "entry's signature")
def verify_document_command(document, entry_path, keys_path):
    """Verify offline that DOCUMENT is evidence named by a ledger entry: its SHA-256 is among the
    entry's data.documents (a claim) or its data.sha256 (an upload); with --keys, that the entry's
    signature verifies by the published keys."""
    try:
        result = documents.verify_document(document, entry_path, keys_path)
    except (verify.VerificationError, ValueError, KeyError, TypeError, UnicodeError, OSError) as exc:
        _fail(exc)
    click.echo(documents.document_text(result))
