"""The command line (`python -m voucher_service.ledger.verify`, and through
voucher_service/cli/verify.py `vouchers verify`): files in, a summary or
"FAILED at ..." out, exit status 0 or 1."""
from __future__ import annotations

import argparse
import sys

from .checkpoint import load_policy_file
from .common import DECIMAL, VerificationError
from .files import read_lines, read_text
from .keys import load_keys_file
from .parallel import CHUNK_BYTES, cpu_jobs, verify_export_parallel
from .receipts import receipt_text, verify_receipt_file
from .replay import Summary, verify_export


def verify_export_files(export_path: str, checkpoint_path: str, keys_path: str,
                        previous_checkpoint_path: str | None = None, *, jobs: int = 1,
                        chunk_bytes: int = CHUNK_BYTES, start_method: str | None = None,
                        policy_path: str | None = None) -> Summary:
    """Verify the files; `jobs` > 1 checks lines in that many processes (0: one per CPU); with a
    policy file, the checkpoints must satisfy it too."""
    jobs = cpu_jobs(jobs)
    keys = load_keys_file(keys_path)
    policy = load_policy_file(policy_path) if policy_path else None
    checkpoint = read_text(checkpoint_path, "checkpoint")
    previous = read_text(previous_checkpoint_path, "previous checkpoint") if previous_checkpoint_path else None
    if export_path == "-":
        if jobs > 1:
            return verify_export_parallel(sys.stdin.buffer, None, checkpoint, keys, previous, jobs=jobs,
                                          chunk_bytes=chunk_bytes, start_method=start_method, policy=policy)
        return verify_export(read_lines(sys.stdin.buffer), checkpoint, keys, previous, policy=policy)
    try:
        handle = open(export_path, "rb")
    except OSError as exc:
        raise VerificationError(f"cannot read {export_path}: {exc.strerror or exc}", where="export") from None
    with handle:
        if jobs > 1:
            return verify_export_parallel(handle, export_path, checkpoint, keys, previous, jobs=jobs,
                                          chunk_bytes=chunk_bytes, start_method=start_method, policy=policy)
        return verify_export(read_lines(handle), checkpoint, keys, previous, policy=policy)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m voucher_service.ledger.verify",
        description="Verify the voucher ledger offline, with its public keys only.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="verify a JSON Lines export against a signed checkpoint")
    export.add_argument("export", help="the file served by GET /ledger/export ('-' for standard input)")
    export.add_argument("--checkpoint", required=True, help="the note served by GET /ledger/checkpoint")
    export.add_argument("--keys", required=True, help="the JSON served by GET /ledger/keys")
    export.add_argument("--previous-checkpoint", help="an earlier checkpoint the log must extend")
    export.add_argument("--jobs", type=_jobs, default=1, metavar="N",
                        help="check lines in N processes (default 1: this one; 0: one per CPU; at most 4 per CPU)")
    export.add_argument("--policy", help=POLICY_HELP)
    receipt = commands.add_parser("receipt", help="verify a receipt from GET /ledger/receipts/{seq}")
    receipt.add_argument("receipt", help="the receipt JSON file")
    receipt.add_argument("--keys", required=True, help="the JSON served by GET /ledger/keys")
    receipt.add_argument("--policy", help=POLICY_HELP)
    return parser


POLICY_HELP = ("a policy file (log, witness, group, quorum lines): the checkpoint must be signed by its log key "
               "and cosigned by its quorum of witnesses")


def _jobs(text: str) -> int:
    if not DECIMAL.match(text):
        raise argparse.ArgumentTypeError("N must be 0 (one per CPU) or a positive number of processes")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            print(verify_export_files(args.export, args.checkpoint, args.keys, args.previous_checkpoint,
                                      jobs=args.jobs, policy_path=args.policy).text())
        else:
            print(receipt_text(verify_receipt_file(args.receipt, args.keys, args.policy)))
    except VerificationError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError, UnicodeError, OSError, RecursionError) as exc:
        # Not expected (the checks above turn bad input into VerificationError),
        # but an auditor's malformed file must never end in a traceback.
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
