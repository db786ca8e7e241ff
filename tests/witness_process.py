"""`vouchers witness` as its user runs it: init, add-log and serve as real
processes with their own directory and passphrase, and a small client of
its HTTP interface. For the witness's functional and concurrency tests."""
from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from voucher_service.cli.devserver import free_port
from voucher_service.ledger.cosignature import Cosigner, add_signature_lines, cosignatures
from voucher_service.ledger.tlog_witness import request_body
from voucher_service.witness.directory import WitnessDir
from voucher_service.witness.state import State

BIN = os.path.dirname(sys.executable)
VOUCHERS = os.path.join(BIN, "vouchers")
PASSPHRASE = "witness-test-passphrase"
STARTUP_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 60


def witness_env(passphrase: str | None = PASSPHRASE) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERS_", "GUNICORN_"))}
    if passphrase is not None:
        env["VOUCHERS_WITNESS_PASSPHRASE"] = passphrase
    return env


def vouchers(*args: str, passphrase: str | None = PASSPHRASE) -> subprocess.CompletedProcess:
    return subprocess.run([VOUCHERS, *args], env=witness_env(passphrase), capture_output=True, text=True,
                          timeout=REQUEST_TIMEOUT_S)


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class WitnessProcess:
    def __init__(self, directory: str, name: str = "witness.test/ks", *, mode: str = "verifying",
                 passphrase: str = PASSPHRASE):
        self.directory, self.name, self.mode, self.passphrase = str(directory), name, mode, passphrase
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(os.path.dirname(self.directory), f"{os.path.basename(self.directory)}.log")
        self.vkey: str | None = None

    # --- set-up, as the region's administrator does it ------------------------------------------

    def init(self) -> "WitnessProcess":
        done = vouchers("witness", "init", "--dir", self.directory, "--name", self.name, passphrase=self.passphrase)
        assert done.returncode == 0, done.stdout + done.stderr
        self.vkey = done.stdout.strip().splitlines()[-1]
        return self

    def add_log(self, origin: str, vkey: str, url: str | None = None, token: str | None = None, *,
                cli: bool = True) -> None:
        """`vouchers witness add-log`; with cli=False the function it runs, in this process (a
        process start less, for tests that list many logs)."""
        if not cli:
            WitnessDir(self.directory).add_log(origin, vkey, url, token)
            return
        args = ["witness", "add-log", "--dir", self.directory, "--origin", origin, "--vkey", vkey]
        if url:
            args += ["--url", url]
        if token:
            token_file = os.path.join(os.path.dirname(self.directory), f"token-{abs(hash(origin))}")
            with open(token_file, "w", encoding="ascii") as handle:
                handle.write(token + "\n")
            args += ["--token-file", token_file]
        done = vouchers(*args)
        assert done.returncode == 0, done.stdout + done.stderr

    def list_logs(self, logs) -> None:
        """Many logs at once, written to D/logs in its documented format (what
        add-log appends, without a process start per log)."""
        with open(os.path.join(self.directory, "logs"), "a", encoding="utf-8") as handle:
            for log in logs:
                handle.write(f"{log.origin} {log.log_vkey}\n")

    @property
    def cosigner(self) -> Cosigner:
        return Cosigner.parse(self.vkey)

    # --- the process -------------------------------------------------------------------------------

    def launch(self, passphrase: str | None = "") -> subprocess.Popen:
        """`passphrase`: the witness's own unless given (None: none set)."""
        passphrase = self.passphrase if passphrase == "" else passphrase
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [VOUCHERS, "witness", "serve", "--dir", self.directory, "--bind", f"127.0.0.1:{self.port}",
                 "--mode", self.mode], env=witness_env(passphrase), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self.process

    def start(self) -> "WitnessProcess":
        self.launch()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the witness exited with {self.process.returncode}: {self.output()}")
            try:
                if self.request("GET", "/healthz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the witness did not answer in {STARTUP_TIMEOUT_S} s: {self.output()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """kill -9 the gunicorn master and its worker at once."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process:
            self.process.wait()

    def output(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()[-3000:]

    # --- its HTTP interface ----------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None, timeout_s: float = REQUEST_TIMEOUT_S):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return Answer(response.status, response.getheader("Content-Type", ""), response.read())
        except http.client.HTTPException as exc:
            # A response cut off in its body by a kill -9 (IncompleteRead) is, to the
            # tests, the server gone under the request, as a reset is: an OSError.
            raise ConnectionResetError(f"{method} {path}: {exc!r}") from exc
        finally:
            connection.close()

    def post(self, body: bytes, timeout_s: float = REQUEST_TIMEOUT_S) -> Answer:
        return self.request("POST", "/add-checkpoint", body, timeout_s)

    def add_checkpoint(self, log, old: int, size: int | None = None, proof=None, note: str | None = None) -> Answer:
        """POST the log's checkpoint of `size` (default: all of it) with the proof from `old`."""
        size = log.size if size is None else size
        proof = log.consistency(old, size) if proof is None else proof
        return self.post(request_body(old, proof, note if note is not None else log.checkpoint(size)))

    def cosigned_timestamp(self, note: str, answer: Answer) -> int:
        """The timestamp of this witness's valid cosignature in a 200's body (asserts there is one)."""
        assert answer.status == 200, (answer.status, answer.text)
        assert answer.content_type.startswith("text/plain"), answer.content_type
        found = cosignatures(add_signature_lines(note, answer.text), [self.cosigner])
        assert set(found) == {self.name}, found
        return found[self.name]

    # --- what it keeps (read from its database, as its administrator can) -------------------------

    @property
    def state(self) -> State:
        return State(os.path.join(self.directory, "state.sqlite"))
