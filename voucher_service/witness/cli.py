"""`vouchers witness init | add-log | serve | status` (docs/witness.md).

Registered on the `vouchers` group itself (cli/commands.py), like `verify`:
none of these needs the operator's app, database or keys, only D.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone

import click

from .directory import PASSPHRASE_ENV, WitnessDir, WitnessSetupError, read_token_file
from .state import State, StateError

DIR_OPTION = click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
                          help="the witness's directory D: its key, state and list of logs")


def _fail(exc: Exception):
    raise click.ClickException(str(exc)) from None


@click.group("witness")
def witness_group():
    """An independent witness (C2SP tlog-witness): cosigns a log's checkpoints after checking them."""


@witness_group.command("init")
@DIR_OPTION
@click.option("--name", required=True, help="the witness's name, a schema-less URL such as witness.example.org/ks")
def init_command(directory, name):
    """Create D (0700), the witness key encrypted with $VOUCHERS_WITNESS_PASSPHRASE, its state and an empty list
    of logs. Prints the witness's vkey alone on the last line."""
    witness_dir = WitnessDir(directory)
    try:
        vkey = witness_dir.create(name, os.environ.get(PASSPHRASE_ENV, ""))
        State(witness_dir.state_path).create()
    except (WitnessSetupError, StateError, OSError) as exc:
        _fail(exc)
    click.echo(f"witness {name} initialised in {witness_dir.path}; give the log's operator this vkey:")
    click.echo(vkey)


@witness_group.command("add-log")
@DIR_OPTION
@click.option("--origin", required=True, help="the log's origin (the first line of its checkpoints)")
@click.option("--vkey", "log_vkey", required=True, help="the log key's note verifier key (its `note_key` in "
                                                        "GET /api/v1/ledger/keys, purpose log)")
@click.option("--url", default=None, help="the log service's base URL, for the verifying mode")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False),
              help="a file holding an auditor token of the log's service (copied into D, 0600)")
def add_log_command(directory, origin, log_vkey, url, token_file):
    """Witness one more log: append `ORIGIN VKEY [URL]` to D/logs. Restart `serve` to pick it up."""
    witness_dir = WitnessDir(directory)
    try:
        token = read_token_file(token_file) if token_file else None
        log = witness_dir.add_log(origin, log_vkey, url, token)
    except (WitnessSetupError, OSError) as exc:
        _fail(exc)
    how = f"entries read from {log.url}" + (" with the auditor token" if log.token else " without a token") \
        if log.url else "no URL: its entries are not read, even in verifying mode"
    click.echo(f"witnessing {log.origin} (log key {log.verifier.name}+{log.verifier.key_hash.hex()}; {how})")


@witness_group.command("serve")
@DIR_OPTION
@click.option("--bind", required=True, help="HOST:PORT to listen on, such as 127.0.0.1:7380")
@click.option("--mode", type=click.Choice(["verifying", "plain"]), default="verifying", show_default=True,
              help="verifying: also read and check the new entries before cosigning; plain: the spec alone")
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="concurrent requests (default 8)")
def serve_command(directory, bind, mode, threads):
    """Serve POST /add-checkpoint and GET /healthz. The key's passphrase comes from $VOUCHERS_WITNESS_PASSPHRASE."""
    from .app import create_app
    from .server import DEFAULT_THREADS, WitnessServer, check_bind
    from .service import Witness

    witness_dir = WitnessDir(directory)
    try:
        check_bind(bind)
        identity = witness_dir.load_identity(os.environ.get(PASSPHRASE_ENV, ""))
        logs = witness_dir.load_logs()
        state = State(witness_dir.state_path)
        state.create()
        state.check()
    except (ValueError, WitnessSetupError, StateError, OSError) as exc:
        _fail(exc)
    for log in logs.values():
        if mode == "verifying" and log.url is None:
            click.echo(f"note: {log.origin} has no URL: its checkpoints are cosigned on their proofs alone", err=True)
        elif mode == "verifying" and log.token is None:
            click.echo(f"note: {log.origin} has no auditor token: reading its entries may be refused", err=True)
    if not logs:
        click.echo(f"note: {witness_dir.logs_path} lists no log: every checkpoint will be refused (404)", err=True)
    click.echo(f"witness {identity.name} ({identity.cosigner.vkey}) serving {len(logs)} log(s) on {bind}, "
               f"{mode} mode", err=True)
    app = create_app(Witness(identity, logs, state, mode=mode))
    WitnessServer(app, bind=bind, threads=threads or DEFAULT_THREADS).run()


@witness_group.command("status")
@DIR_OPTION
def status_command(directory):
    """What the witness holds: per log, the latest checkpoint it cosigned, and the evidence it kept."""
    witness_dir = WitnessDir(directory)
    try:
        witness_dir.check_initialised()
        logs = witness_dir.load_logs()
        state = State(witness_dir.state_path)
        state.check()
        latest, evidence = state.all_latest(), state.evidence()
    except (WitnessSetupError, StateError, OSError) as exc:
        _fail(exc)
    for origin in sorted(set(logs) | set(latest)):
        held = latest.get(origin)
        kept = [e for e in evidence if e["origin"] == origin]
        kinds = ", ".join(f"{kind} {sum(e['repeats'] for e in kept if e['kind'] == kind)}"
                          for kind in sorted({e["kind"] for e in kept})) or "none"
        cosigned = (f"size {held.size} cosigned at {_utc(held.cosigned_at)} ({held.cosigned_at})"
                    if held else "nothing cosigned yet")
        listed = "" if origin in logs else " (no longer in D/logs)"
        click.echo(f"{origin}{listed}: {cosigned}; refusals kept as evidence: {kinds}")


def _utc(unix_s: int) -> str:
    # The cosignature's own timestamp is Unix seconds; people read UTC, and the seconds stay
    # beside it so a line can be matched against the cosignature line byte for byte.
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
