"""Checks of DESIGN §3 and §4 over the whole database, for tests, readiness and
reconciliation: every entry canonical and signed, seq gapless, postings
positive, no non-negative account ever below zero during replay, all balances
summing to zero, stored balances equal to the replay, and every voucher's
balances adding up to its face value and matching its ledger accounts.

The balances are replayed by the offline verifier's `apply_postings`, and
signatures checked by libsodium as the verifier checks them
(`verify_entry_signature`), so this check and an auditor's cannot disagree
about a replayed balance or a signature. Unlike the verifier it does not stop
at the first problem: it lists them all.
"""
from __future__ import annotations

from sqlmodel import Session, select

from voucher_service.ledger import leaf_hash, verify_entry_signature
from voucher_service.ledger.accounts import held_account, voucher_account
from voucher_service.ledger.entry import parse_entry
from voucher_service.ledger.verify import VerificationError
from voucher_service.ledger.verify.replay import apply_postings
from voucher_service.models import Account, LedgerEntry, LedgerHead, SigningKeyRecord, Voucher

BATCH_SIZE = 1000


def _entries(session: Session):
    last = -1
    while True:
        rows = session.exec(select(LedgerEntry).where(LedgerEntry.seq > last)
                            .order_by(LedgerEntry.seq).limit(BATCH_SIZE)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def replay_balances(session: Session, problems: list[str]) -> dict[str, int]:
    keys = {k.key_id: k for k in session.exec(select(SigningKeyRecord)).all()}
    balances: dict[str, int] = {}
    expected_seq = 0
    for row in _entries(session):
        where = f"seq {row.seq}"
        if row.seq != expected_seq:
            problems.append(f"{where}: expected seq {expected_seq} (gap or duplicate)")
            expected_seq = row.seq
        expected_seq += 1
        try:
            entry = parse_entry(bytes(row.canonical))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if entry.get("seq") != row.seq:
            problems.append(f"{where}: entry bytes say seq {entry.get('seq')}")
        if bytes(row.leaf_hash) != leaf_hash(bytes(row.canonical)):
            problems.append(f"{where}: stored leaf hash does not match the entry bytes")
        key = keys.get(entry.get("sig", {}).get("key_id"))
        if key is None:
            problems.append(f"{where}: signed by an unknown key")
        else:
            if not verify_entry_signature(entry, bytes(key.public_key)):
                problems.append(f"{where}: signature does not verify")
            if key.region != entry.get("region"):
                problems.append(f"{where}: signed by a key of {key.region}, recorded for {entry.get('region')}")
            if entry["ts"] < key.valid_from or (key.valid_until and entry["ts"] >= key.valid_until):
                problems.append(f"{where}: key {key.key_id} was not valid at {entry['ts']}")
        postings = []
        for posting in entry.get("postings", []):
            amount = posting.get("amount")
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                problems.append(f"{where}: posting amount {amount!r} is not a positive integer")
                continue
            postings.append((posting["source"], posting["destination"], amount))
        try:
            apply_postings(balances, postings, row.seq)
        except VerificationError as exc:
            # apply_postings has applied the entry before refusing it: the
            # replay goes on from what the stored bytes say, and so still finds
            # every later problem.
            problems.append(f"{exc.where}: {exc.why}")
    head = session.get(LedgerHead, 1)
    if head is None or head.size != expected_seq:
        problems.append(f"ledger head says size {head.size if head else None}, the log has {expected_seq} entries")
    return balances


def check_all(session: Session) -> list[str]:
    problems: list[str] = []
    replayed = replay_balances(session, problems)
    if sum(replayed.values()) != 0:
        problems.append(f"balances sum to {sum(replayed.values())}, not zero")
    stored = {a.name: a.balance_fen for a in session.exec(select(Account)).all()}
    for name in sorted(set(stored) | set(replayed)):
        if stored.get(name, 0) != replayed.get(name, 0):
            problems.append(f"account {name}: stored {stored.get(name, 0)}, ledger replay {replayed.get(name, 0)}")
    for voucher in session.exec(select(Voucher)).all():
        total = voucher.available_fen + voucher.held_fen + voucher.redeemed_fen + voucher.returned_fen
        if total != voucher.face_fen:
            problems.append(f"voucher {voucher.id}: balances add to {total}, face value is {voucher.face_fen}")
        for account, column in ((voucher_account(voucher.id), voucher.available_fen),
                                (held_account(voucher.id), voucher.held_fen)):
            if replayed.get(account, 0) != column:
                problems.append(f"voucher {voucher.id}: {account} is {replayed.get(account, 0)} in the ledger, "
                                f"{column} in the voucher row")
    return problems
