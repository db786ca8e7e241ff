"""What the demo shows of each step: the reply, the voucher's balances, and the ledger entries
it produced, read through the API and replayed with the ledger's own replay."""
from __future__ import annotations

from http import HTTPStatus

import click

from voucher_service.cli.client import API_PREFIX as API
from voucher_service.cli.client import ApiClient, Reply, TransportError
from voucher_service.cli.demo.scenario import COLUMN, ENTRIES_PAGE, STEP_WIDTH
from voucher_service.ledger import merkle
from voucher_service.ledger.accounts import held_account, voucher_account
from voucher_service.ledger.amounts import yuan
from voucher_service.ledger.canonical import canonical_bytes
from voucher_service.ledger.verify import VerificationError
from voucher_service.ledger.verify.entries import posting_tuples
from voucher_service.ledger.verify.replay import apply_postings


class DemoFailure(click.ClickException):
    """Ends the demo with exit status 1 and a message on standard error."""


def send(client: ApiClient, method: str, path: str, token: str | None = None, body: dict | None = None,
          **options) -> Reply:
    try:
        return client.request(method, path, token, body, **options)
    except TransportError as exc:
        raise DemoFailure(
            f"cannot reach the server at {client.base_url} ({method} {path}: {exc.reason}).\n"
            "Is it running? Start it with `make run`, or pass its address with --url.") from None


# --------------------------------------------------------------------------- ledger


class Ledger:
    """The ledger as the API shows it to an auditor, read forward from seq 0.

    Every entry read is replayed at once, so `balances` are always those of
    the whole ledger so far: a partial replay would take the budgets that
    fund vouchers below zero, which the ledger's replay rightly refuses.
    """

    def __init__(self, client: ApiClient, token: str | None, expect):
        self.client, self.token, self.expect = client, token, expect
        self.next_seq = 0
        self.balances: dict[str, int] = {}
        self.problem = None if token else "no auditor token to read the ledger with: pass --auditor-token"

    def read_new(self) -> list[dict]:
        """The entries written since the last call (all of them, the first time)."""
        if self.problem:
            return []
        rows = []
        while True:
            reply = send(self.client, "GET", f"{API}/ledger/entries", self.token,
                          query={"start": self.next_seq, "limit": ENTRIES_PAGE})
            self.expect(reply, 200, f"reading the ledger from seq {self.next_seq}")
            items = reply.json["items"]
            for entry in items:
                self._replay(entry)
            rows.extend(items)
            if not items or reply.json.get("next_start") is None:
                return rows

    def _replay(self, entry: dict) -> None:
        seq = entry["seq"]
        if seq != self.next_seq:
            # Entries the token may not see would make the replay wrong, not just short.
            raise DemoFailure(f"seq {self.next_seq} is missing from the ledger read through the API (the next "
                              f"entry is seq {seq}): the token reading it must be an auditor's")
        try:
            apply_postings(self.balances, posting_tuples(entry), seq)
        except VerificationError as exc:
            raise DemoFailure(f"the signed ledger does not replay: {exc}") from None
        self.next_seq = seq + 1

    def disagreements(self, voucher: dict) -> list[str]:
        """How the replayed balances of the voucher's accounts differ from the voucher's own."""
        return [f"account {account} is {self.balance(account)} fen, {column} is {voucher[column]} fen"
                for account, column in ((voucher_account(voucher["id"]), "available_fen"),
                                        (held_account(voucher["id"]), "held_fen"))
                if self.balance(account) != voucher[column]]

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)  # the replay forgets accounts back at zero


# --------------------------------------------------------------------------- output


def cny(fen: int) -> str:
    return yuan(fen, thousands=True)


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def step_line(number: int, title: str, reply: Reply, outcome: str) -> str:
    status = f"{reply.status} {phrase(reply.status)}".strip()
    return f"{number:>2}. {title:<{STEP_WIDTH}} {status:<16} {outcome}"


def balances_lines(voucher: dict | None) -> list[str]:
    if voucher is None:
        return ["      voucher    not issued yet"]
    names = ("face", "available", "held", "redeemed")
    values = [voucher[f"{name}_fen"] for name in names]
    return [
        f"      voucher    {voucher['code']}  {voucher['status']}",
        "      balances   " + "     " + "".join(f"{name:>{COLUMN}}" for name in names),
        "                 " + "CNY  " + "".join(f"{cny(value):>{COLUMN}}" for value in values),
        "                 " + "fen  " + "".join(f"{value:>{COLUMN}}" for value in values),
    ]


def ledger_lines(entries: list[dict], *, no_entry: str | None, ledger: Ledger) -> list[str]:
    """`no_entry` says why the step writes no entry; None when it must write one."""
    if ledger.problem:
        return [f"      ledger     ({ledger.problem})"]
    if not entries:
        if no_entry is None:
            return ["      ledger     no entry found, though this step should have written one"]
        return [f"      ledger     no entry: {no_entry}"]
    lines = []
    for entry in entries:
        # The API serves entries, not leaf hashes: hashed here as a verifier hashes them (RFC 9162).
        leaf = merkle.leaf_hash(canonical_bytes(entry)).hex()[:16]
        lines.append(f"      ledger     seq {entry['seq']:<6} {entry['kind']:<24} region {entry['region']:<4} "
                     f"leaf {leaf}")
        if not entry["postings"]:
            lines.append("                 (no postings)")
            continue
        for posting in entry["postings"]:
            lines.append(f"{'':17}{posting['amount']:>10} fen  {posting['source']} → {posting['destination']}")
    return lines


# --------------------------------------------------------------------------- the demo
