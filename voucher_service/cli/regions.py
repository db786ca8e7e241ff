"""`vouchers regions add`: a new member region from the command line, as POST /regions does."""
from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext
from marshmallow import ValidationError
from sqlmodel import Session

from voucher_service.cli.commands import _require_initialised
from voucher_service.db import get_engine
from voucher_service.journal.keys import KeyUnavailable
from voucher_service.programme import regions
from voucher_service.programme.api import RegionCreate
from voucher_service.programme.context import Context
from voucher_service.programme.errors import DomainError


@click.group("regions")
def regions_group():
    """Member regions of the scheme."""


@regions_group.command("add")
@click.argument("body", type=click.File("r", encoding="utf-8"))
@with_appcontext
def regions_add(body):
    """Add the member region described in BODY (a JSON file, or - for standard input), with the fields of
    POST /regions: code, name_zh, name_en and policy. Creates its signing key, registers it, adopts the
    policy and funds its budget_fen, each a ledger entry, in one transaction; a running server takes the
    region up with no restart."""
    try:
        fields = RegionCreate().load(json.load(body))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{body.name} is not JSON: {exc}") from None
    except ValidationError as exc:
        raise click.ClickException(f"{body.name} is not a region: {json.dumps(exc.messages)}") from None
    config = current_app.config
    keyring = current_app.extensions["vouchers_keyring"]
    with Session(get_engine(), expire_on_commit=False) as session:
        _require_initialised(session)
        ctx = Context(session=session, signer=keyring.signer_for(session), actor="system:regions")
        try:
            region = regions.join_scheme(ctx, keyring, code=fields["code"], name_zh=fields["name_zh"],
                                         name_en=fields["name_en"], policies=[fields["policy"]],
                                         origin=config["VOUCHERS_LEDGER_ORIGIN"])
        except (DomainError, KeyUnavailable) as exc:
            raise click.ClickException(getattr(exc, "detail", str(exc))) from None
        session.commit()
    click.echo(f"region {region.code} ({region.name_en}) joined the scheme: "
               + ", ".join(f"{row.kind} at seq {row.seq}" for row in ctx.appended))
