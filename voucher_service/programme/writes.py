"""The write path every state change takes: the ledger lock, then one signed entry."""
from __future__ import annotations

from voucher_service.clock import utc_now
from voucher_service.journal import store as journal
from voucher_service.programme.context import Context


def lock(ctx: Context) -> None:
    """Take the ledger lock, then read the clock: every timestamp the change
    writes (reserved_at, redeemed_at, ...) equals its ledger entry's ts, and
    settlement periods and reconciliation periods agree to the microsecond."""
    journal.lock_ledger(ctx.session)
    ctx.now = utc_now()


def append(ctx: Context, **kw):
    row = journal.append(ctx.session, ctx.signer, actor=ctx.actor, ts=ctx.now_str, **kw)
    ctx.appended.append(row)
    return row
