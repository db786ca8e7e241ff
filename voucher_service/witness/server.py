"""`vouchers witness serve`: the witness app under gunicorn, started from Python.

One worker process with threads: requests run concurrently, and the one
thing that must not (check-and-store of a log's checkpoint) is serialised by
SQLite's write lock (state.py), which would hold across processes too. One
process also keeps the decrypted key in one place.
"""
from __future__ import annotations

from gunicorn.app.base import BaseApplication

DEFAULT_THREADS = 8
# Verifying a long stretch of new entries can take a while; the worker's
# heartbeat does not depend on it (gthread), this only bounds a stuck worker.
WORKER_TIMEOUT_S = 120
GRACEFUL_TIMEOUT_S = 20


class WitnessServer(BaseApplication):
    def __init__(self, app, *, bind: str, threads: int = DEFAULT_THREADS):
        self._app = app
        self._options = {
            "bind": [bind], "workers": 1, "worker_class": "gthread", "threads": threads,
            "timeout": WORKER_TIMEOUT_S, "graceful_timeout": GRACEFUL_TIMEOUT_S, "keepalive": 5,
            "limit_request_line": 4094, "limit_request_fields": 50, "accesslog": "-", "errorlog": "-",
            "access_log_format": '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms',
            "proc_name": "vouchers-witness", "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self):
        return self._app


def check_bind(bind: str) -> str:
    host, colon, port = bind.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--bind is HOST:PORT (such as 127.0.0.1:7380), not {bind!r}")
    return bind
