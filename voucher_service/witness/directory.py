"""The witness's directory D: everything it has and needs, nothing of the operator's.

    D/witness.json     its name, key id and vkey (public)
    D/witness.key      its Ed25519 private key, PKCS#8 PEM encrypted with VOUCHERS_WITNESS_PASSPHRASE (0600)
    D/state.sqlite     the latest checkpoint it cosigned per log, and the evidence it kept (state.py)
    D/logs             the logs it witnesses: `ORIGIN VKEY [URL]` a line (`#` comments)
    D/tokens/<id>      an auditor token per log with a URL, for the verifying mode (0600)

D is 0700. Backing up D (with the database copied by SQLite's backup, see
docs/witness.md) is backing up the witness; restoring an older copy rolls
its state back, which is exactly what a witness must never do silently.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import urllib.parse
from dataclasses import dataclass

from voucher_service.ledger.cosignature import Cosigner, vkey
from voucher_service.ledger.note import NoteError, Verifier, check_key_name
from voucher_service.ledger.signing import SigningKey

PASSPHRASE_ENV = "VOUCHERS_WITNESS_PASSPHRASE"
FORMAT = "vouchers-witness/v1"
MAX_LOGS = 1000
MAX_LOGS_FILE_BYTES = 1 << 20
MAX_TOKEN_BYTES = 4096
MAX_URL_CHARS = 2000


class WitnessSetupError(Exception):
    """What stops a witness command, said in one sentence for its user."""


@dataclass(frozen=True)
class LogConfig:
    origin: str
    verifier: Verifier       # the log key that must sign its checkpoints
    url: str | None          # where a verifying witness reads its entries and keys
    token: str | None        # the auditor token for the export


@dataclass(frozen=True)
class Identity:
    name: str
    key: SigningKey

    @property
    def cosigner(self) -> Cosigner:
        return Cosigner(self.name, self.key.public_key_raw)


class WitnessDir:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def state_path(self) -> str:
        return self.file("state.sqlite")

    @property
    def logs_path(self) -> str:
        return self.file("logs")

    def token_path(self, origin: str) -> str:
        return self.file("tokens", hashlib.sha256(origin.encode("utf-8")).hexdigest()[:32])

    # --- init ----------------------------------------------------------------------------------

    def create(self, name: str, passphrase: str) -> str:
        """Make D, the key (never over an existing one) and an empty logs file; the vkey."""
        try:
            check_key_name(name)
        except NoteError:
            raise WitnessSetupError(f"the witness name {name!r} must be printable, without spaces or '+' "
                                    f"(a schema-less URL such as witness.example.org/ks)") from None
        if not passphrase:
            raise WitnessSetupError(f"set {PASSPHRASE_ENV} to the passphrase that will protect the witness key")
        if os.path.exists(self.file("witness.key")) or os.path.exists(self.file("witness.json")):
            raise WitnessSetupError(f"{self.path} already holds a witness key: refusing to replace it")
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        os.chmod(self.path, 0o700)
        key = SigningKey.generate("witness")
        _write_new(self.file("witness.key"), key.encrypted_pem(passphrase), 0o600)
        witness_vkey = vkey(name, key.public_key_raw)
        identity = {"format": FORMAT, "name": name, "key_id": key.key_id, "vkey": witness_vkey}
        _write_new(self.file("witness.json"), (json.dumps(identity, indent=2) + "\n").encode("utf-8"), 0o644)
        if not os.path.exists(self.logs_path):
            _write_new(self.logs_path, b"# ORIGIN VKEY [URL], one log a line (vouchers witness add-log)\n", 0o644)
        return witness_vkey

    def _identity_json(self) -> dict:
        try:
            with open(self.file("witness.json"), encoding="utf-8") as handle:
                identity = json.load(handle)
        except FileNotFoundError:
            raise WitnessSetupError(f"{self.path} is not a witness directory: run `vouchers witness init "
                                    f"--dir {self.path} --name NAME`") from None
        except (OSError, ValueError) as exc:
            raise WitnessSetupError(f"cannot read {self.file('witness.json')}: {exc}") from None
        if not isinstance(identity, dict) or identity.get("format") != FORMAT:
            raise WitnessSetupError(f"{self.file('witness.json')} is not a {FORMAT} witness description")
        return identity

    def check_initialised(self) -> None:
        self._identity_json()

    def load_identity(self, passphrase: str) -> Identity:
        """The witness key, opened with the passphrase; a clear error if it does not open."""
        identity = self._identity_json()
        if not passphrase:
            raise WitnessSetupError(f"set {PASSPHRASE_ENV} to the passphrase of the witness key")
        try:
            with open(self.file("witness.key"), "rb") as handle:
                pem = handle.read()
        except OSError as exc:
            raise WitnessSetupError(f"cannot read the witness key: {exc}") from None
        try:
            key = SigningKey.from_encrypted_pem(identity["key_id"], pem, passphrase)
        except (ValueError, TypeError):
            raise WitnessSetupError(f"{PASSPHRASE_ENV} does not open {self.file('witness.key')}: wrong passphrase, "
                                    f"or not the key `vouchers witness init` wrote") from None
        if vkey(identity["name"], key.public_key_raw) != identity.get("vkey"):
            raise WitnessSetupError(f"{self.file('witness.key')} is not the key of the vkey in witness.json")
        return Identity(identity["name"], key)

    # --- logs ------------------------------------------------------------------------------------

    def load_logs(self) -> dict[str, LogConfig]:
        try:
            with open(self.logs_path, "rb") as handle:
                raw = handle.read(MAX_LOGS_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise WitnessSetupError(f"cannot read {self.logs_path}: {exc}") from None
        if len(raw) > MAX_LOGS_FILE_BYTES:
            raise WitnessSetupError(f"{self.logs_path} is larger than {MAX_LOGS_FILE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WitnessSetupError(f"{self.logs_path} is not UTF-8") from None
        logs: dict[str, LogConfig] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                origin, verifier, url = parse_log_line(line)
            except WitnessSetupError as exc:
                raise WitnessSetupError(f"{self.logs_path} line {number}: {exc}") from None
            if origin in logs:
                raise WitnessSetupError(f"{self.logs_path} line {number}: origin {origin} is listed twice")
            logs[origin] = LogConfig(origin, verifier, url, self._token(origin))
            if len(logs) > MAX_LOGS:
                raise WitnessSetupError(f"{self.logs_path} lists more than {MAX_LOGS} logs")
        return logs

    def _token(self, origin: str) -> str | None:
        try:
            with open(self.token_path(origin), encoding="utf-8") as handle:
                return handle.read(MAX_TOKEN_BYTES).strip() or None
        except FileNotFoundError:
            return None

    def add_log(self, origin: str, log_vkey: str, url: str | None, token: str | None) -> LogConfig:
        """Append `ORIGIN VKEY [URL]` to D/logs and keep the token; refuses a duplicate origin."""
        self.check_initialised()
        for what, value in (("origin", origin), ("log key", log_vkey), ("URL", url)):
            if value is not None and (not value or any(c.isspace() for c in value)):
                raise WitnessSetupError(f"the {what} {value!r} must be one word, with no spaces")
        parsed_origin, verifier, parsed_url = parse_log_line(" ".join(part for part in (origin, log_vkey, url) if part))
        if verifier.name != parsed_origin:
            # Our logs name their key after the origin (DESIGN §10): a key of another name
            # is another log's, and no checkpoint of this origin would ever be cosigned.
            raise WitnessSetupError(f"the log key is named {verifier.name!r}, not after the origin {parsed_origin!r}: "
                                    f"take the note_key of the \"purpose\": \"log\" key in the log's /ledger/keys")
        line = " ".join(part for part in (parsed_origin, log_vkey, parsed_url) if part)
        if token is not None and parsed_url is None:
            raise WitnessSetupError("--token-file is for reading the log's entries: give the log's --url too")
        # flock: two add-log commands at once must not both pass the duplicate check.
        with open(self.logs_path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if parsed_origin in self.load_logs():
                raise WitnessSetupError(f"origin {parsed_origin} is already in {self.logs_path}")
            if token is not None:
                os.makedirs(self.file("tokens"), mode=0o700, exist_ok=True)
                _write_replacing(self.token_path(parsed_origin), token.encode("utf-8") + b"\n", 0o600)
            elif os.path.exists(self.token_path(parsed_origin)):
                os.unlink(self.token_path(parsed_origin))  # left by a log line removed by hand: not this one's
            handle.seek(0, os.SEEK_END)
            if handle.tell() and not _ends_with_newline(self.logs_path):
                handle.write("\n")
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return LogConfig(parsed_origin, verifier, parsed_url, token)


def parse_log_line(line: str) -> tuple[str, Verifier, str | None]:
    parts = line.split()
    if len(parts) not in (2, 3) or line != " ".join(parts):
        raise WitnessSetupError("a log line is `ORIGIN VKEY [URL]`, separated by single spaces (an origin has no "
                                "spaces)")
    origin, log_vkey = parts[0], parts[1]
    if not origin.isprintable():
        raise WitnessSetupError(f"the origin {origin!r} must be printable")
    try:
        verifier = Verifier.parse(log_vkey)
    except NoteError as exc:
        raise WitnessSetupError(f"the log key {log_vkey!r} is not a note verifier key "
                                f"(name+hash+base64(0x01 || key)): {exc}") from None
    url = parts[2] if len(parts) == 3 else None
    if url is not None:
        split = urllib.parse.urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname or split.query or split.fragment or \
                len(url) > MAX_URL_CHARS:
            raise WitnessSetupError(f"the log URL {url!r} is not the service's base URL "
                                    f"(http(s)://host[:port][/path])")
        url = url.rstrip("/")
    return origin, verifier, url


def read_token_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise WitnessSetupError(f"cannot read the token file: {exc}") from None
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or len(raw) > MAX_TOKEN_BYTES or any(c.isspace() or not c.isprintable() for c in token):
        raise WitnessSetupError(f"{path} does not hold one token (a single line of printable ASCII)")
    return token


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _write_new(path: str, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet, whole or not at all: a crash
    leaves no half key, and an existing file (a key!) is never replaced."""
    partial = f"{path}.{os.getpid()}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, path)  # fails if `path` exists, unlike rename
    except FileExistsError:
        raise WitnessSetupError(f"{path} already exists: refusing to replace it") from None
    finally:
        os.unlink(partial)
    _fsync_dir(os.path.dirname(path))


def _write_replacing(path: str, data: bytes, mode: int) -> None:
    partial = f"{path}.{os.getpid()}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
