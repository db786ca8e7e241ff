"""The service under gunicorn, in a child process of its own, and nginx in
front of it as docs/deployment.md configures it: for the concurrency and
end-to-end tests and for the benchmarks. The service itself never uses this
module.

The child gets a session (process group) of its own, so that stop() and
kill() reach the master and every worker at once.
"""
from __future__ import annotations

import os
import re
import shutil
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


# --- nginx in front, configured from docs/deployment.md --------------------------------

NGINX = shutil.which("nginx") or next((path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                       if os.access(path, os.X_OK)), None)
DEPLOYMENT_DOC = os.path.join(REPO, "docs", "deployment.md")
SNIPPET_FIRST_LINE = "# vouchers-proxy.conf:"
NGINX_START_TIMEOUT_S = 15


def deployment_blocks() -> list[str]:
    with open(DEPLOYMENT_DOC, encoding="utf-8") as handle:
        return re.findall(r"^```nginx\n(.*?)^```", handle.read(), re.S | re.M)


def proxy_snippet() -> str:
    """The nginx block of docs/deployment.md that is the include file, verbatim."""
    snippets = [block for block in deployment_blocks() if block.startswith(SNIPPET_FIRST_LINE)]
    assert len(snippets) == 1, f"docs/deployment.md must hold one nginx block starting {SNIPPET_FIRST_LINE!r}"
    return snippets[0]


def checkpoint_cache_zone(directory: str) -> str:
    """docs/deployment.md's `proxy_cache_path` line (beside the upstream), with its
    directory moved to `directory`: the zone the snippet's checkpoint cache names."""
    lines = [line.strip() for block in deployment_blocks() for line in block.splitlines()
             if line.strip().startswith("proxy_cache_path ")]
    assert len(lines) == 1, "docs/deployment.md must declare one proxy_cache_path"
    return re.sub(r"^proxy_cache_path \S+", f"proxy_cache_path {directory}", lines[0])


class NginxProcess:
    """nginx in the foreground, its files in `directory`, the snippet inside a
    server on a free port, the upstream the snippet names at `upstream_port`."""

    def __init__(self, directory, upstream_port: int):
        self.directory, self.port = str(directory), free_port()
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, "vouchers-proxy.conf"), "w", encoding="utf-8") as handle:
            handle.write(proxy_snippet())
        path = lambda name: os.path.join(self.directory, name)  # noqa: E731
        # Run as root (CI), the workers would switch to "nobody", which may not write here.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf = path("nginx.conf")
        with open(self.conf, "w", encoding="utf-8") as handle:
            handle.write(f"""{user}daemon off;
worker_processes 1;
pid {path("nginx.pid")};
error_log {path("error.log")} info;
events {{ worker_connections 1024; }}
http {{
    access_log {path("access.log")};
    client_body_temp_path {path("client_body")};
    proxy_temp_path {path("proxy")};
    fastcgi_temp_path {path("fastcgi")};
    uwsgi_temp_path {path("uwsgi")};
    scgi_temp_path {path("scgi")};
    {checkpoint_cache_zone(path("cache"))}
    upstream vouchers_gunicorn {{
        server 127.0.0.1:{upstream_port};
    }}
    server {{
        listen 127.0.0.1:{self.port};
        include {path("vouchers-proxy.conf")};
    }}
}}
""")
        self.process: subprocess.Popen | None = None

    def start(self) -> "NginxProcess":
        self.process = subprocess.Popen([NGINX, "-p", self.directory, "-c", self.conf, "-e",
                                         os.path.join(self.directory, "error.log")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + NGINX_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}{self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nginx did not listen in {NGINX_START_TIMEOUT_S} s: {self.error_log()}")

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.directory, "error.log"), encoding="utf-8", errors="replace") as handle:
                return handle.read()[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish, then exit
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
