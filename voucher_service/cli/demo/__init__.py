"""`vouchers demo`: drive the whole lifecycle through the HTTP API of a running server.

A Kunshan enterprise spends a Kunshan voucher at a Shanghai provider (通用通兑):
apply → approve (issue) → reserve (with an Idempotency-Key, replayed) → an
over-ratio reservation refused → claim (lower amount) → confirm → the wrong
region's officer refused → approve (redeemed) → a second reservation cancelled.

The demo is a client like any other: everything it shows comes through the API
(cli/client.py), the ledger too, which it reads as an auditor and replays with
the ledger's own replay, as an auditor's tools would. The one thing it does in
this machine's database is an administrator's bootstrap: minting its
short-lived tokens, unless they are passed in.
"""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from voucher_service.cli.client import ApiClient
from voucher_service.cli.demo.scenario import ENTERPRISE_ID, HOME_REGION, HTTP_TIMEOUT_S, PROVIDER_ID, PROVIDER_REGION
from voucher_service.cli.demo.story import Demo
from voucher_service.cli.demo.tokens import TOKEN_OPTIONS, resolve_tokens, revoke_tokens
from voucher_service.cli.demo.view import DemoFailure, send


@click.command("demo")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="base URL of the running server")
@click.option("--sme-token", envvar="VOUCHERS_DEMO_SME_TOKEN",
              help=f"token of an sme bound to {ENTERPRISE_ID} (env VOUCHERS_DEMO_SME_TOKEN)")
@click.option("--officer-token", envvar="VOUCHERS_DEMO_OFFICER_TOKEN",
              help=f"token of an officer of {HOME_REGION} (env VOUCHERS_DEMO_OFFICER_TOKEN)")
@click.option("--provider-token", envvar="VOUCHERS_DEMO_PROVIDER_TOKEN",
              help=f"token of the provider {PROVIDER_ID} (env VOUCHERS_DEMO_PROVIDER_TOKEN)")
@click.option("--sh-officer-token", envvar="VOUCHERS_DEMO_SH_OFFICER_TOKEN",
              help=f"token of an officer of {PROVIDER_REGION} (env VOUCHERS_DEMO_SH_OFFICER_TOKEN)")
@click.option("--auditor-token", envvar="VOUCHERS_DEMO_AUDITOR_TOKEN",
              help="token of an auditor, to read the ledger entries (env VOUCHERS_DEMO_AUDITOR_TOKEN)")
@with_appcontext
def demo_command(url, sme_token, officer_token, provider_token, sh_officer_token, auditor_token):
    """Drive the whole voucher lifecycle through the API of a running server and print each step.

    A Kunshan enterprise spends a Kunshan voucher at a Shanghai provider. Unless
    all four role tokens are given, the demo mints short-lived tokens in this
    machine's database (DATABASE_URL), an auditor's too, and revokes them at
    the end. Each step's ledger entries are read through the API with the
    auditor's token; given the four tokens but no --auditor-token, the demo
    shows no entries.
    """
    try:
        client = ApiClient(url, timeout_s=HTTP_TIMEOUT_S)
    except ValueError:
        raise click.BadParameter("use http://host:port or https://host", param_hint="--url") from None
    given = [sme_token, officer_token, provider_token, sh_officer_token]
    if any(given) and not all(given):
        raise click.UsageError(f"pass all four tokens ({TOKEN_OPTIONS}) or none, and the demo mints its own")
    ready = send(client, "GET", "/readyz")
    if ready.status != 200:
        raise DemoFailure(f"the server at {client.base_url} is not ready ({ready.status}): {ready.problem}")

    tokens, told = resolve_tokens(given, auditor_token)
    click.echo(f"Innovation voucher demo (科技创新券, 通用通兑) against {client.base_url}")
    click.echo(f"  tokens      {told}")
    try:
        Demo(client, tokens).run()
    finally:
        if tokens.minted_ids:
            revoke_tokens(tokens.minted_ids)
