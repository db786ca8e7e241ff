"""kill -9 every gunicorn process during a write load, restart: every write
that was acknowledged (2xx) is there, seq is gapless, and the offline
verifier accepts a fresh export and checkpoint."""
from __future__ import annotations

import threading
import time

from conftest import Actors
from helpers import wait_for_checkpoint
from server import Server
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all
from voucher_service.journal.tree import tree_size
from voucher_service.ledger.verify import load_keys, verify_export
from voucher_service.models import Application, Voucher

WRITERS = 8
LOAD_BEFORE_KILL_S = 2.0
MAX_REQUESTS_PER_WRITER = 500


def test_kill_9_loses_no_acknowledged_write(databases, tmp_path):
    url = databases.clone()
    app = databases.app(url)
    actors = Actors(app)
    log = str(tmp_path / "server.log")
    server = Server(url, databases.keys_dir, log).start()
    try:
        smes = {e: actors.token("sme", enterprise_id=e) for e in ("ent-ks-003", "ent-sh-001", "ent-wj-001")}
        officers = {"KS": actors.token("officer", region="KS"), "SH": actors.token("officer", region="SH"),
                    "WJ": actors.token("officer", region="WJ")}
        acknowledged_applications, acknowledged_vouchers = set(), set()
        lock, stop = threading.Lock(), threading.Event()

        def writer(number: int) -> None:
            enterprise = list(smes)[number % len(smes)]
            region = enterprise.split("-")[1].upper()
            for i in range(MAX_REQUESTS_PER_WRITER):
                if stop.is_set():
                    return
                try:
                    application = server.client.api("POST", "/applications", smes[enterprise],
                                                    {"amount_fen": 100, "purpose": f"crash {number}/{i}"},
                                                    idempotency_key=f"crash-{number}-{i}")
                    if application.status != 201:
                        continue
                    with lock:
                        acknowledged_applications.add(application.json["id"])
                    approved = server.client.api("POST", f"/applications/{application.json['id']}/approve",
                                                 officers[region], {})
                    if approved.status == 200:
                        with lock:
                            acknowledged_vouchers.add(approved.json["voucher_id"])
                except OSError:
                    return  # the server is gone: what was acknowledged so far is what counts

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        time.sleep(LOAD_BEFORE_KILL_S)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        assert len(acknowledged_applications) > WRITERS, "the load acknowledged almost nothing before the kill"

        server = Server(url, databases.keys_dir, log).start()
        with app.app_context(), Session(get_engine()) as session:
            found_applications = set(session.exec(select(Application.id).where(
                Application.id.in_(acknowledged_applications))).all())
            found_vouchers = set(session.exec(select(Voucher.id).where(Voucher.id.in_(acknowledged_vouchers))).all())
            assert found_applications == acknowledged_applications
            assert found_vouchers == acknowledged_vouchers
            assert check_all(session) == []  # gapless seq, signatures, balances = replay

        auditor = actors.token("auditor")
        with app.app_context(), Session(get_engine()) as session:
            size = tree_size(session)
        checkpoint = wait_for_checkpoint(server.client, size)  # the restarted server's publisher signs it
        keys = server.client.api("GET", "/ledger/keys")
        assert keys.status == 200, keys.raw
        export = server.client.api("GET", "/ledger/export", auditor)
        assert export.status == 200, export.raw
        lines = export.raw.splitlines()
        assert lines, "the export is empty"
        summary = verify_export(iter(lines), checkpoint.text, load_keys(keys.json))
        assert summary.entries == len(lines)
    finally:
        server.stop()
        with app.app_context():
            get_engine().dispose()
        databases.drop(url)
