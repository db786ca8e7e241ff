"""The ledger as a Beancount file, for auditors: `bean-check` replays it and
confirms that the stored account balances are what the signed entries add up to.

No Flask here: give it a SQLAlchemy/SQLModel session and it yields the text
(`iter_beancount`) or writes it to a text stream (`write_beancount`).

What the file holds, in order:

- a header: `option "title"`, `option "operating_currency" "CNY"` and a comment
  with the body of the checkpoint it corresponds to (origin line if given, tree
  size, base64 RFC 9162 root), so an auditor can tie the file to a signed
  checkpoint of the same size;
- `commodity CNY` and one `open` directive per account, dated the local date
  (Asia/Shanghai) of the account's first posting, found by one SQL query over
  the `ledger_posting` index (an account that only has a stored balance row is
  opened on the first entry's date);
- one transaction per ledger entry, in seq order, read from the entries'
  canonical bytes (the signed record, not the posting index): date = local
  date of `ts` in Asia/Shanghai, flag `*`, payee = the entry's region,
  narration = its kind, metadata `seq`, `ts`, `actor` and the entry's refs
  (`voucher: "vch_…"`, …). Each posting becomes two Beancount postings: the
  destination +amount and the source −amount. **Entries without postings are
  kept as transactions without postings** (Beancount accepts them), so every
  seq from 0 to tree size − 1 appears exactly once;
- `balance` assertions for every account, dated the day after the latest
  entry's local date, from the stored `account` balances (an account with
  postings but no stored row is asserted to be 0). Each carries an explicit
  tolerance `~ 0`: Beancount's inferred tolerance for two decimals is 0.01 CNY,
  which would let a one-fen discrepancy pass;
- a last comment line `; end of export: N entries, M balance assertions`. A
  file cut short loses its assertions and still passes `bean-check`: check
  that this line is there.

Amounts: integer fen written as CNY with exactly two decimals by integer
arithmetic (1 fen → 0.01, 100000 fen → 1000.00); never a float.

Signs: a Beancount balance here is the ledger's (what the account received
minus what it sent), so `bean-check` compares like with like. The account
types say what each account *is* for the programme — Treasury is the equity
that funds it (negative: it sent), Budget the money it holds, Vouchers and
Payable what it owes SMEs and providers, Paid what it has spent — but, as
Beancount does not enforce signs, Liabilities here carry positive balances:
the amount committed to the voucher or owed to the provider.

Account mapping (ledger → Beancount; R region, V voucher id, P provider id)::

    treasury:R        Equity:Treasury:<R>
    budget:R          Assets:Budget:<R>
    voucher:V         Liabilities:Vouchers:<V>:Available
    voucher:V:held    Liabilities:Vouchers:<V>:Held
    payable:R:P       Liabilities:Payable:<R>:<P>     (R = up to the first ':')
    paid:P            Expenses:Paid:<P>
    receivable:R:P    Assets:Receivable:<R>:<P>       (R = up to the first ':')
    anything else     Equity:Unmapped:<whole name>

where <x> is one Beancount name component made from the id x, injectively:

1. ASCII letters and digits are kept as they are.
2. Every maximal run of other characters is replaced: a run that is exactly
   "-" stays "-"; exactly "_" becomes "--"; any other run becomes "---",
   the lowercase hex of its UTF-8 bytes, and "-" (so "a-_b" → "a---2d5f-b",
   "a:b" → "a---3a-b", "a b" → "a---20-b").
3. If the result does not begin with an ASCII uppercase letter other than
   "X", or a digit, it is prefixed with "X" (so "KS" → "KS",
   "prv-sh-001" → "Xprv-sh-001", "vch_1a21c" → "Xvch--1a21c",
   "XY" → "XXY").

Decoding is unambiguous (after an alphanumeric character, a run of one dash
is "-", two are "_", three start a hex escape ended by a dash), so
`ledger_account(beancount_account(name)) == name` for every string: the
mapping is injective, and `ledger_account` maps a Beancount name back.

Consistency: everything is read in one transaction. On PostgreSQL the
function switches a session that has not begun a transaction to REPEATABLE
READ; on SQLite (WAL) a read transaction is a snapshot already — callers
should begin it deferred (`db.read_only()`), so an export never holds the
write lock. Memory stays flat: entries are read in keyset batches
(seq > last), accounts through a streamed cursor.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from typing import Iterator, TextIO

from sqlalchemy import String, cast, func, literal, null, select, union_all

from voucher_service import clock
from voucher_service.journal import tree
from voucher_service.ledger.accounts import (
    BUDGET_PREFIX,
    HELD_SUFFIX,
    PAID_PREFIX,
    TREASURY_PREFIX,
    VOUCHER_PREFIX,
    payable_account,
    receivable_account,
)
from voucher_service.ledger.amounts import yuan
from voucher_service.models import Account, LedgerEntry, LedgerPosting

CURRENCY = "CNY"
DEFAULT_TITLE = "Cross-region innovation voucher ledger"
BATCH = 1000
EMPTY_LEDGER_DATE = date(1970, 1, 1)

ESCAPE_PREFIX = "X"
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_RUN = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]+")
_HEX_ESCAPE = re.compile(r"---([0-9a-f]+)-")
_META_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED_META = {"seq", "ts", "actor", "filename", "lineno"}

# Ledger account kind -> Beancount parent.
TREASURY = "Equity:Treasury"
BUDGET = "Assets:Budget"
VOUCHERS = "Liabilities:Vouchers"
PAYABLE = "Liabilities:Payable"
PAID = "Expenses:Paid"
RECEIVABLE = "Assets:Receivable"
UNMAPPED = "Equity:Unmapped"


class ExportError(RuntimeError):
    """The stored ledger is not a gapless log: the export refuses to go on."""


# --- names -------------------------------------------------------------------

def component(value: str) -> str:
    """One valid Beancount account-name component encoding `value` injectively."""
    parts = []
    for run in _RUN.findall(value):
        if _ALNUM.fullmatch(run):
            parts.append(run)
        elif run == "-":
            parts.append("-")
        elif run == "_":
            parts.append("--")
        else:
            parts.append("---" + run.encode("utf-8").hex() + "-")
    body = "".join(parts)
    if body and body[0] != ESCAPE_PREFIX and (body[0].isascii() and (body[0].isupper() or body[0].isdigit())):
        return body
    return ESCAPE_PREFIX + body


def decode_component(name: str) -> str:
    """The inverse of `component`."""
    body = name[1:] if name.startswith(ESCAPE_PREFIX) else name
    out, i = [], 0
    while i < len(body):
        if body[i] != "-":
            j = i
            while j < len(body) and body[j] != "-":
                j += 1
            out.append(body[i:j])
            i = j
            continue
        if body.startswith("---", i):
            match = _HEX_ESCAPE.match(body, i)
            if match is None:
                raise ValueError(f"not an encoded component: {name!r}")
            out.append(bytes.fromhex(match.group(1)).decode("utf-8"))
            i = match.end()
        elif body.startswith("--", i):
            out.append("_")
            i += 2
        else:
            out.append("-")
            i += 1
    return "".join(out)


def beancount_account(name: str) -> str:
    """The Beancount account of a ledger account (see the module docstring)."""
    kind, sep, rest = name.partition(":")
    if sep:
        if kind == "treasury":
            return f"{TREASURY}:{component(rest)}"
        if kind == "budget":
            return f"{BUDGET}:{component(rest)}"
        if kind == "paid":
            return f"{PAID}:{component(rest)}"
        if kind == "voucher":
            if rest.endswith(HELD_SUFFIX):
                return f"{VOUCHERS}:{component(rest[: -len(HELD_SUFFIX)])}:Held"
            return f"{VOUCHERS}:{component(rest)}:Available"
        if kind in ("payable", "receivable"):
            region, sep2, provider = rest.partition(":")
            if sep2:
                parent = PAYABLE if kind == "payable" else RECEIVABLE
                return f"{parent}:{component(region)}:{component(provider)}"
    return f"{UNMAPPED}:{component(name)}"


def ledger_account(account: str) -> str:
    """The ledger account a Beancount account of this export stands for."""
    parts = account.split(":")
    parent, tail = ":".join(parts[:2]), parts[2:]
    if parent == TREASURY and len(tail) == 1:
        return TREASURY_PREFIX + decode_component(tail[0])
    if parent == BUDGET and len(tail) == 1:
        return BUDGET_PREFIX + decode_component(tail[0])
    if parent == PAID and len(tail) == 1:
        return PAID_PREFIX + decode_component(tail[0])
    if parent == VOUCHERS and len(tail) == 2 and tail[1] in ("Available", "Held"):
        return VOUCHER_PREFIX + decode_component(tail[0]) + (HELD_SUFFIX if tail[1] == "Held" else "")
    if parent == PAYABLE and len(tail) == 2:
        return payable_account(decode_component(tail[0]), decode_component(tail[1]))
    if parent == RECEIVABLE and len(tail) == 2:
        return receivable_account(decode_component(tail[0]), decode_component(tail[1]))
    if parent == UNMAPPED and len(tail) == 1:
        return decode_component(tail[0])
    raise ValueError(f"not an account of this export: {account!r}")


# --- values ------------------------------------------------------------------

def cny(fen: int) -> str:
    """Integer fen as a Beancount CNY amount: two decimals, no thousands separator."""
    return yuan(fen)


def quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def local_date(ts: str) -> date:
    return clock.local_date(datetime.fromisoformat(ts.replace("Z", "+00:00")))


# --- the export --------------------------------------------------------------

def _begin_snapshot(session) -> None:
    if session.in_transaction():
        return  # the caller's transaction: its isolation is the caller's choice
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _accounts(session, size: int):
    """(name, first posting ts or None, stored balance or 0): one query over the
    posting index and the stored balances, streamed in name order."""
    posting = LedgerPosting.__table__
    account = Account.__table__
    rows = union_all(
        select(posting.c.source.label("name"), posting.c.ts.label("ts"), literal(0).label("balance"))
        .where(posting.c.seq < size),
        select(posting.c.destination, posting.c.ts, literal(0)).where(posting.c.seq < size),
        select(account.c.name, cast(null(), String), account.c.balance_fen),
    ).subquery()
    query = (select(rows.c.name, func.min(rows.c.ts), func.sum(rows.c.balance))
             .group_by(rows.c.name).order_by(rows.c.name))
    for name, first_ts, balance in session.execute(query.execution_options(yield_per=BATCH)):
        yield name, first_ts, int(balance or 0)


def _entry_ts(session, seq: int) -> str | None:
    return session.execute(select(LedgerEntry.ts).where(LedgerEntry.seq == seq)).scalar_one_or_none()


def _transaction(entry: dict) -> str:
    lines = [f"{local_date(entry['ts']).isoformat()} * {quote(entry['region'])} {quote(entry['kind'])}",
             f"  seq: {int(entry['seq'])}",
             f"  ts: {quote(entry['ts'])}",
             f"  actor: {quote(entry.get('actor', ''))}"]
    for key, value in sorted((entry.get("refs") or {}).items()):
        if _META_KEY.fullmatch(key) and key not in _RESERVED_META:
            lines.append(f"  {key}: {quote(value)}")
    for posting in entry.get("postings") or ():
        amount = posting["amount"]
        lines.append(f"  {beancount_account(posting['destination'])}  {cny(amount)} {CURRENCY}")
        lines.append(f"  {beancount_account(posting['source'])}  {cny(-amount)} {CURRENCY}")
    return "\n".join(lines) + "\n\n"


def iter_beancount(session, *, title: str = DEFAULT_TITLE, origin: str | None = None,
                   batch: int = BATCH) -> Iterator[str]:
    """The Beancount file, one directive (or header block) per item, each
    ending with a newline."""
    _begin_snapshot(session)
    size = tree.tree_size(session)
    root = tree.b64(tree.root_at(session, size))
    first_ts = _entry_ts(session, 0) if size else None
    first_day = local_date(first_ts) if first_ts else EMPTY_LEDGER_DATE
    last_day = first_day  # the latest local date of any entry, found while streaming

    checkpoint_body = ([origin] if origin else []) + [str(size), root]
    yield (f"; Generated from the signed ledger, entries 0 to {size - 1} (seq order).\n"
           "; It is the ledger whose checkpoint body is:\n"
           + "".join(f";   {line}\n" for line in checkpoint_body)
           + f"; tree size {size}, root (base64) {root}\n"
           "; Amounts: integer fen as CNY. Balances are the ledger's (received minus sent).\n"
           "; Account mapping and name encoding: voucher_service/journal/beancount.py.\n\n")
    yield f"option \"title\" {quote(title)}\n"
    yield f"option \"operating_currency\" \"{CURRENCY}\"\n\n"
    yield f"{first_day.isoformat()} commodity {CURRENCY}\n\n"

    for name, first_posting_ts, _balance in _accounts(session, size):
        opened = local_date(first_posting_ts) if first_posting_ts else first_day
        yield f"{opened.isoformat()} open {beancount_account(name)} {CURRENCY}\n"
    yield "\n"

    last = -1
    while last + 1 < size:
        rows = session.execute(select(LedgerEntry.seq, LedgerEntry.canonical)
                               .where(LedgerEntry.seq > last, LedgerEntry.seq < size)
                               .order_by(LedgerEntry.seq).limit(batch)).all()
        if not rows:
            break
        for seq, canonical in rows:
            if seq != last + 1:
                raise ExportError(f"the ledger has no entry {last + 1} (next stored is {seq})")
            entry = json.loads(bytes(canonical))
            if entry.get("seq") != seq:
                raise ExportError(f"the entry stored at seq {seq} says seq {entry.get('seq')!r}")
            yield _transaction(entry)
            last_day = max(last_day, local_date(entry["ts"]))
            last = seq
    if last + 1 != size:
        raise ExportError(f"the ledger has {last + 1} entries, its head says {size}")

    day = (last_day + timedelta(days=1)).isoformat()
    count = 0
    for name, _first, balance in _accounts(session, size):
        count += 1
        yield f"{day} balance {beancount_account(name)}  {cny(balance)} ~ 0 {CURRENCY}\n"
    yield f"\n; end of export: {size} entries, {count} balance assertions\n"


def iter_chunks(session, *, chunk_chars: int = 64 * 1024, **kwargs) -> Iterator[str]:
    """`iter_beancount` grouped into chunks of about `chunk_chars` characters."""
    buffer, length = [], 0
    for piece in iter_beancount(session, **kwargs):
        buffer.append(piece)
        length += len(piece)
        if length >= chunk_chars:
            yield "".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer)


def write_beancount(session, out: TextIO, **kwargs) -> None:
    """Write the Beancount file to a text stream."""
    for chunk in iter_chunks(session, **kwargs):
        out.write(chunk)


__all__ = ["ExportError", "beancount_account", "component", "cny", "decode_component", "iter_beancount",
           "iter_chunks", "ledger_account", "write_beancount"]
