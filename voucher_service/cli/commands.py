"""The `vouchers` command line: a Flask CLI group."""
from __future__ import annotations

import os
import sqlite3
import sys
from datetime import date

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlmodel import Session

from voucher_service.cli import migrate
from voucher_service.cli.seeds import load_seeds
from voucher_service.clock import local_date, rfc3339, utc_now
from voucher_service.db import get_engine, read_only
from voucher_service.http import auth
from voucher_service.journal.keys import KeyUnavailable, log_key_record, rotate_region_key
from voucher_service.journal.publisher import publish_round, sign_checkpoint
from voucher_service.journal.store import LedgerInvariantError
from voucher_service.journal.tree import witness_report
from voucher_service.models import Enterprise, Provider, Region, WitnessStatus
from voucher_service.process import vouchers
from voucher_service.programme.context import Context


def _context(session: Session, actor: str) -> Context:
    keyring = current_app.extensions["vouchers_keyring"]
    return Context(session=session, signer=keyring.signer_for(session), actor=actor)


@click.command("init")
@with_appcontext
def init_command():
    """Migrate the database, create region keys and the log key, load seeds, fund budgets, sign the
    first checkpoint (safe to run twice)."""
    engine = get_engine()
    migrate.upgrade(engine)
    config = current_app.config
    keyring = current_app.extensions["vouchers_keyring"]
    with Session(engine, expire_on_commit=False) as session:
        try:
            created = load_seeds(_context(session, "system:init"), config["VOUCHERS_SEEDS"], keyring=keyring,
                                 origin=config["VOUCHERS_LEDGER_ORIGIN"])
            if log_key_record(session) is None:
                keyring.create_log_key(session, origin=config["VOUCHERS_LEDGER_ORIGIN"], now_str=rfc3339(utc_now()))
                created["log key"] = 1
        except KeyUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
    # The first checkpoint (or, on an upgraded database, the log key's
    # signature on the last region-signed one), so GET /ledger/checkpoint has
    # something to serve before the background publisher's first round.
    try:
        sign_checkpoint(engine, keyring, config["VOUCHERS_LEDGER_ORIGIN"])
    except (KeyUnavailable, LedgerInvariantError) as exc:
        raise click.ClickException(f"cannot sign a checkpoint: {exc}") from None
    made = ", ".join(f"{count} {name}" for name, count in created.items() if count)
    click.echo(f"database ready at {config['DATABASE_URL']}; " + (f"created {made}" if made else "nothing to change"))


def _require_initialised(session: Session) -> None:
    try:
        session.connection().exec_driver_sql("SELECT 1 FROM ledger_head")
    except OperationalError:
        raise click.ClickException(
            f"the database at {current_app.config['DATABASE_URL']} is not initialised: run `vouchers init`") from None


@click.group("token")
def token_group():
    """Access tokens."""


@token_group.command("create")
@click.option("--role", required=True, type=click.Choice(auth.ROLES))
@click.option("--region", help="region code (officer, finance)")
@click.option("--enterprise", "enterprise_id", help="enterprise id (sme)")
@click.option("--provider", "provider_id", help="provider id (provider)")
@click.option("--principal", "principal_id", help="reuse a principal id (another token for the same person)")
@click.option("--ttl-days", type=click.IntRange(1, 3650), default=None, help="days until the token expires")
@with_appcontext
def token_create(role, region, enterprise_id, provider_id, principal_id, ttl_days):
    """Create a token; it is printed once, alone on the last line."""
    with Session(get_engine(), expire_on_commit=False) as session:
        _require_initialised(session)
        for model, value, label in ((Region, region, "region"), (Enterprise, enterprise_id, "enterprise"),
                                    (Provider, provider_id, "provider")):
            if value and session.get(model, value) is None:
                raise click.ClickException(f"no {label} {value}")
        try:
            token, row = auth.create_token(session, role=role, region=region, enterprise_id=enterprise_id,
                                           provider_id=provider_id, principal_id=principal_id,
                                           ttl_days=ttl_days or current_app.config["VOUCHERS_TOKEN_TTL_DAYS"])
        except auth.BindingError as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
    binding = row.region or row.enterprise_id or row.provider_id or "-"
    click.echo(f"token {row.id} for principal {row.principal_id}: role {row.role}, bound to {binding}, "
               f"expires {row.expires_at}", err=False)
    click.echo(token)


@token_group.command("revoke")
@click.argument("token_id")
@with_appcontext
def token_revoke(token_id):
    """Revoke a token by its id (tok_…)."""
    with Session(get_engine()) as session:
        _require_initialised(session)
        if not auth.revoke_token(session, token_id):
            raise click.ClickException(f"no token {token_id}")
        session.commit()
    click.echo(f"revoked {token_id}")


@click.command("expire")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="expire vouchers whose last valid day is before this date (default: today, Asia/Shanghai)")
@click.option("--dry-run", is_flag=True, help="list what would expire; change nothing and append no entry")
@with_appcontext
def expire_command(as_of, dry_run):
    """Expire vouchers past valid_until, returning their available value to the budget."""
    day: date = as_of.date() if as_of else local_date(utc_now())
    with Session(get_engine(), expire_on_commit=False) as session:
        _require_initialised(session)
        if dry_run:
            # No ledger lock and no commit: a dry run must not wait behind, or block, real writes.
            due = vouchers.vouchers_due_to_expire(_context(session, "system:expire"), day)
            session.rollback()
            for voucher in due:
                click.echo(f"would expire {voucher.id} ({voucher.code}), valid until {voucher.valid_until}: "
                           f"{voucher.available_fen} fen back to budget:{voucher.region}")
            click.echo(f"{len(due)} voucher(s) would expire as of {day.isoformat()} (dry run: nothing changed)")
            return
        try:
            expired = vouchers.expire_vouchers(_context(session, "system:expire"), day)
        except KeyUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
    for voucher in expired:
        click.echo(f"expired {voucher.id} ({voucher.code}): {voucher.returned_fen} fen back to budget:{voucher.region}")
    click.echo(f"{len(expired)} voucher(s) expired as of {day.isoformat()}")


@click.group("keys")
def keys_group():
    """Region signing keys."""


@keys_group.command("rotate")
@click.option("--region", required=True, help="region code")
@with_appcontext
def keys_rotate(region):
    """Retire the region's key and sign from now on with a new one (old signatures stay valid)."""
    config = current_app.config
    with Session(get_engine(), expire_on_commit=False) as session:
        _require_initialised(session)
        if session.get(Region, region) is None:
            raise click.ClickException(f"no region {region}")
        try:
            old, new = rotate_region_key(session, current_app.extensions["vouchers_keyring"], region=region,
                                         keys_dir=config["VOUCHERS_KEYS_DIR"],
                                         passphrase=config["VOUCHERS_KEY_PASSPHRASE"],
                                         origin=config["VOUCHERS_LEDGER_ORIGIN"], actor="system:keys")
        except KeyUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
    click.echo(f"region {region}: retired {old.key_id} (valid until {old.valid_until}); "
               f"new key {new.key_id} signs from {new.valid_from}")


@click.group("export")
def export_group():
    """Exports of the ledger for auditors."""


@export_group.command("beancount")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="file to write (default: standard output)")
@with_appcontext
def export_beancount(output):
    """The ledger as a Beancount file: `bean-check FILE` replays every entry and
    asserts the stored account balances."""
    engine = get_engine()
    origin = current_app.config["VOUCHERS_LEDGER_ORIGIN"]
    # Read transactions begun deferred: exporting never takes the write lock.
    # The export itself is one transaction, so it reads one snapshot.
    with read_only():
        with Session(engine) as session:
            _require_initialised(session)
        with Session(engine) as session:
            _export_beancount_to(session, output, origin)
    if output is not None:
        click.echo(f"wrote {output}", err=True)


def _export_beancount_to(session: Session, output: str | None, origin: str) -> None:
    from voucher_service.journal.beancount import ExportError, iter_chunks

    try:
        if output is None:
            for chunk in iter_chunks(session, origin=origin):
                click.echo(chunk, nl=False)
            return
        partial = f"{output}.partial"
        try:
            with open(partial, "w", encoding="utf-8", newline="\n") as handle:
                for chunk in iter_chunks(session, origin=origin):
                    handle.write(chunk)
            os.replace(partial, output)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("checkpoint")
def checkpoint_group():
    """Checkpoints of the ledger (DESIGN §10)."""


@checkpoint_group.command("publish")
@with_appcontext
def checkpoint_publish():
    """Sign the tree now if it grew and collect the witnesses' cosignatures, as the background
    publisher does every VOUCHERS_CHECKPOINT_INTERVAL_S; print the published note and each witness's answer."""
    config = current_app.config
    engine = get_engine()
    with Session(engine) as session:
        _require_initialised(session)
    witnesses = current_app.extensions["vouchers_witnesses"]
    try:
        checkpoint = publish_round(engine, current_app.extensions["vouchers_keyring"],
                                  config["VOUCHERS_LEDGER_ORIGIN"], witnesses,
                                  timeout_s=config["VOUCHERS_WITNESS_TIMEOUT_S"], reading=read_only)
    except (KeyUnavailable, LedgerInvariantError) as exc:
        raise click.ClickException(f"cannot publish: {exc}") from None
    click.echo(checkpoint.note, nl=False)
    with Session(engine) as session:
        for witness in witness_report(session, witnesses)["witnesses"]:
            status = session.get(WitnessStatus, witness["name"])
            click.echo(f"witness {witness['name']}: " + (f"cosigned size {witness['cosigned_size']}" if witness["ok"]
                                                         else f"did not cosign: {status.error if status else '?'}"),
                       err=True)


def init_app(app) -> None:
    from voucher_service.cli.demo import demo_command
    from voucher_service.cli.regions import regions_group
    for command in (init_command, token_group, expire_command, demo_command, keys_group, export_group,
                    regions_group, checkpoint_group):
        app.cli.add_command(command)


def _create_app(*_args, **_kwargs):
    from voucher_service import create_app
    try:
        return create_app()
    except ValueError as exc:  # a setting that cannot be used: one line saying which, no traceback
        raise click.ClickException(str(exc)) from None


@click.command("verify-statement")
@click.argument("statement", type=click.Path(dir_okay=False))
@click.option("--keys", "keys_path", required=True, type=click.Path(dir_okay=False),
              help="the JSON served by GET /ledger/keys")
def verify_statement_command(statement, keys_path):
    """Verify a reconciliation STATEMENT (GET /regions/{code}/reconciliation) offline: its signature by the
    region's key valid when it was generated, and that every one of its checks is ok."""
    from voucher_service.ledger.statement import StatementError, verify_statement_files
    try:
        summary = verify_statement_files(statement, keys_path)
    except (StatementError, KeyError, TypeError, UnicodeError, OSError, RecursionError) as exc:
        message = str(exc) if isinstance(exc, StatementError) else f"{type(exc).__name__}: {exc}"
        click.echo(f"FAILED: {message}", err=True)
        raise SystemExit(1)
    click.echo(summary)


class _Group(FlaskGroup):
    """Failures the user can mend (a database URL that does not parse or a file that is
    not a database, a folder that cannot be written, a file that is not UTF-8 text)
    are one line on stderr and exit 1, never a traceback; a bug still shows its own."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ArgumentError as exc:
            raise click.ClickException(f"the database URL cannot be used: {exc}") from None
        except DatabaseError as exc:
            reason = str(exc.orig or exc).splitlines()[0]
            raise click.ClickException(f"the database (DATABASE_URL) cannot be used: {reason}") from None
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"a state database cannot be used: {exc}") from None
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"a file given is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None


def main() -> None:
    cli = _Group(create_app=_create_app, add_default_commands=True, add_version_option=False,
                 help="Cross-region innovation voucher ledger.")
    # Registered on the group, not the app: verifying needs no app, database or keys dir.
    from voucher_service.cli.verify import verify_command, verify_document_command, verify_receipt_command
    cli.add_command(verify_command)
    cli.add_command(verify_receipt_command)
    cli.add_command(verify_document_command)
    cli.add_command(verify_statement_command)
    from voucher_service.witness.cli import witness_group  # a region's witness: only its own directory
    cli.add_command(witness_group)
    from voucher_service.cli.monitor import monitor_command
    cli.add_command(monitor_command)
    cli.main(args=sys.argv[1:], prog_name="vouchers")
