"""The demo's short-lived tokens: given, or minted in this machine's database and revoked at the end."""
from __future__ import annotations

from dataclasses import dataclass, field

import click
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from voucher_service.cli.demo.scenario import ENTERPRISE_ID, HOME_REGION, PROVIDER_ID, PROVIDER_REGION, TOKEN_TTL_DAYS
from voucher_service.cli.demo.view import DemoFailure
from voucher_service.db import get_engine
from voucher_service.http import auth

ROLE_TOKENS = (("sme", {"enterprise_id": ENTERPRISE_ID}), ("officer", {"region": HOME_REGION}),
               ("provider", {"provider_id": PROVIDER_ID}), ("officer", {"region": PROVIDER_REGION}))
AUDITOR_TOKEN = ("auditor", {})
TOKEN_OPTIONS = "--sme-token, --officer-token, --provider-token, --sh-officer-token"


@dataclass
class Tokens:
    sme: str
    officer: str
    provider: str
    sh_officer: str
    auditor: str | None  # reads the ledger; without one the demo shows no entries
    minted_ids: list = field(default_factory=list)


def mint_tokens(specs) -> tuple[list[str], list[str]]:
    """Tokens for (role, binding) pairs, and their ids for revoking them."""
    minted, ids = [], []
    try:
        with Session(get_engine()) as session:
            for role, binding in specs:
                token, row = auth.create_token(session, role=role, ttl_days=TOKEN_TTL_DAYS, **binding)
                minted.append(token)
                ids.append(row.id)
            session.commit()
    except SQLAlchemyError as exc:
        raise DemoFailure(
            f"cannot mint the demo's tokens in {current_app.config['DATABASE_URL']} ({type(exc).__name__}).\n"
            "Run `vouchers init` with the server's DATABASE_URL first, or pass the four tokens with "
            f"{TOKEN_OPTIONS} (and --auditor-token to see the ledger).") from None
    return minted, ids


def resolve_tokens(given: list[str | None], auditor: str | None) -> tuple[Tokens, str]:
    """The four role tokens given, or all of them minted, with an auditor's unless one is given
    (whoever passes the role tokens may have no database to mint in); and what was done."""
    if any(given):
        return Tokens(*given, auditor=auditor), "as given" if auditor else "as given, no auditor's: no ledger"
    minted, ids = mint_tokens(ROLE_TOKENS if auditor else ROLE_TOKENS + (AUDITOR_TOKEN,))
    tokens = Tokens(*minted[:len(ROLE_TOKENS)], auditor=auditor or minted[-1], minted_ids=ids)
    return tokens, (f"minted for this run (sme, KS officer, SH provider, SH officer{'' if auditor else ', auditor'}), "
                    f"revoked at the end{'; the auditor token as given' if auditor else ''}")


def revoke_tokens(token_ids: list[str]) -> None:
    try:
        with Session(get_engine()) as session:
            for token_id in token_ids:
                auth.revoke_token(session, token_id)
            session.commit()
    except SQLAlchemyError:
        click.echo("note: the demo's tokens could not be revoked; they expire within a day", err=True)
