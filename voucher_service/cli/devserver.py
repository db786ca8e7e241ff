"""The service under gunicorn, in a child process of its own: for the
concurrency and end-to-end tests and for the benchmarks. The service itself
never uses this module.

The child gets a session (process group) of its own, so that stop() and
kill() reach the master and every worker at once.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from voucher_service.cli.client import ApiClient, TransportError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STOP_TIMEOUT_S = 30
READY_POLL_TIMEOUT_S = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(database_url: str, keys_dir: str, passphrase: str, **settings) -> dict:
    """This process's environment without its VOUCHERS_, GUNICORN_ and
    PROMETHEUS_ settings, and with the service's own (JSON logs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERS_", "GUNICORN_", "PROMETHEUS_"))}
    env.update(DATABASE_URL=database_url, VOUCHERS_KEYS_DIR=keys_dir, VOUCHERS_KEY_PASSPHRASE=passphrase,
               VOUCHERS_SEEDS=os.path.join(REPO, "seeds"), VOUCHERS_LOG_FORMAT="json")
    env.update({k: str(v) for k, v in settings.items()})
    return env


class GunicornProcess:
    """gunicorn with the project's gunicorn.conf.py on a free 127.0.0.1 port."""

    def __init__(self, app: str, env: dict, workers: int, log_path: str, *, bin_dir: str, cwd: str = REPO):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, GUNICORN_BIND=f"127.0.0.1:{self.port}", GUNICORN_WORKERS=str(workers))
        self.app, self.log_path, self.bin_dir, self.cwd = app, log_path, bin_dir, cwd
        self.process: subprocess.Popen | None = None

    def launch(self) -> subprocess.Popen:
        """Start it, without waiting for anything; its output goes to log_path."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [os.path.join(self.bin_dir, "gunicorn"), "-c", os.path.join(REPO, "gunicorn.conf.py"), self.app],
                cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self.process

    def start(self, *, ready_path: str = "/readyz", timeout_s: float = 60):
        """Start it and wait until `ready_path` answers 200; raise (and stop it) if it exits or never does."""
        self.launch()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                if ApiClient(self.base, timeout_s=READY_POLL_TIMEOUT_S).request("GET", ready_path).status == 200:
                    return self
            except TransportError:  # refused while it starts; 503 until it is ready
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready in {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM to the group (gunicorn's graceful stop), SIGKILL if it is not done in time."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """kill -9 the master and every worker at once: a power cut, as far as they can tell."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
