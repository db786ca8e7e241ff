"""Region signing keys: public halves in the database, private halves encrypted on disk."""
from __future__ import annotations

import os
import threading

from sqlmodel import Session, select

from voucher_service.journal import reference_cache as registry_cache
from voucher_service.ledger import SigningKey
from voucher_service.models import SigningKeyRecord


class KeyUnavailable(RuntimeError):
    """A key cannot be used: missing file or wrong passphrase. Stops start-up cleanly."""


def key_path(keys_dir: str, key_id: str) -> str:
    return os.path.join(keys_dir, f"{key_id}.pem")


def note_key_name(origin: str, region: str) -> str:
    return f"{origin}/{region}"


PURPOSE_ENTRY = "entry"
PURPOSE_LOG = "log"
LOG_KEY_PREFIX = "log"


def create_region_key(session: Session, *, region: str, keys_dir: str, passphrase: str, origin: str,
                      now_str: str) -> SigningKeyRecord:
    key = _write_new_key(region, keys_dir, passphrase)
    record = SigningKeyRecord(key_id=key.key_id, region=region, public_key=key.public_key_raw,
                              note_name=note_key_name(origin, region), valid_from=now_str)
    session.add(record)
    session.flush()
    return record


def create_log_key(session: Session, *, keys_dir: str, passphrase: str, origin: str,
                   now_str: str) -> SigningKeyRecord:
    """The operator's log key (DESIGN §10): its note name is the origin, it
    belongs to no region and signs checkpoints only. Made once, by `vouchers
    init`; the instant it is made is when the deployment's checkpoints became
    log-signed and witnessed, which verifiers read from its valid_from."""
    key = _write_new_key(LOG_KEY_PREFIX, keys_dir, passphrase)
    record = SigningKeyRecord(key_id=key.key_id, region=None, purpose=PURPOSE_LOG, public_key=key.public_key_raw,
                              note_name=origin, valid_from=now_str)
    session.add(record)
    session.flush()
    return record


def log_key_record(session: Session) -> SigningKeyRecord | None:
    return session.exec(select(SigningKeyRecord).where(SigningKeyRecord.purpose == PURPOSE_LOG,
                                                       SigningKeyRecord.valid_until.is_(None))).first()


def _write_new_key(prefix: str, keys_dir: str, passphrase: str) -> SigningKey:
    if not passphrase:
        raise KeyUnavailable("VOUCHERS_KEY_PASSPHRASE is empty: set it to encrypt the signing keys")
    key = SigningKey.generate(prefix)
    os.makedirs(keys_dir, mode=0o700, exist_ok=True)
    path = key_path(keys_dir, key.key_id)
    # O_EXCL + 0600: never overwrite a key, never let another user read one.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.encrypted_pem(passphrase))
        handle.flush()
        os.fsync(handle.fileno())
    return key


def is_active_key(region: str | None = None):
    """The SQL condition "an active key" (of `region`, if given): a key without
    a validity end, which rotation sets. The one statement of it: signing,
    cosigning checkpoints and loading keys at start-up all select keys by it."""
    active = SigningKeyRecord.valid_until.is_(None)
    return active if region is None else (SigningKeyRecord.region == region) & active


def active_key_record(session: Session, region: str) -> SigningKeyRecord | None:
    return session.exec(select(SigningKeyRecord).where(is_active_key(region))).first()


class KeyRing:
    """Decrypted private keys, cached per process (decryption is deliberately slow)."""

    def __init__(self, keys_dir: str, passphrase: str):
        self.keys_dir = keys_dir
        self._passphrase = passphrase
        self._cache: dict[str, SigningKey] = {}
        self._lock = threading.Lock()

    def load(self, key_id: str) -> SigningKey:
        with self._lock:
            cached = self._cache.get(key_id)
            if cached is not None:
                return cached
            path = key_path(self.keys_dir, key_id)
            try:
                with open(path, "rb") as handle:
                    pem = handle.read()
            except OSError as exc:
                raise KeyUnavailable(f"private key {key_id} not readable at {path}: {exc.strerror}") from None
            try:
                key = SigningKey.from_encrypted_pem(key_id, pem, self._passphrase)
            except (ValueError, TypeError):
                raise KeyUnavailable(
                    f"cannot decrypt private key {key_id}: wrong VOUCHERS_KEY_PASSPHRASE?") from None
            self._cache[key_id] = key
            return key

    def check_passphrase(self, session: Session) -> None:
        """The passphrase opens the keys already made. A new key is encrypted with
        it: one made under a mistyped passphrase would be a key the service cannot
        load and rotation cannot replace (rotation needs the outgoing key)."""
        record = session.exec(select(SigningKeyRecord).where(is_active_key())).first()
        if record is not None:
            self.load(record.key_id)

    def create_key(self, session: Session, *, region: str, origin: str, now_str: str) -> SigningKeyRecord:
        """A new region's first key, encrypted with this ring's passphrase into its folder."""
        self.check_passphrase(session)
        return create_region_key(session, region=region, keys_dir=self.keys_dir, passphrase=self._passphrase,
                                 origin=origin, now_str=now_str)

    def create_log_key(self, session: Session, *, origin: str, now_str: str) -> SigningKeyRecord:
        self.check_passphrase(session)
        return create_log_key(session, keys_dir=self.keys_dir, passphrase=self._passphrase, origin=origin,
                              now_str=now_str)

    def signer_for(self, session: Session):
        def signer(region: str) -> SigningKey:
            # Read in the appending transaction, under the ledger lock, so a
            # rotation committed while the request waited is always seen: a
            # rotation moves the registry version, which drops the cached id.
            key_id = registry_cache.cached(session, "active_key", region, lambda: session.connection().execute(
                select(SigningKeyRecord.key_id).where(is_active_key(region))).scalar_one_or_none())
            if key_id is None:
                raise KeyUnavailable(f"region {region} has no active signing key")
            return self.load(key_id)
        return signer

    def check_all(self, session: Session) -> list[str]:
        """Load every active key; return the ids loaded (raises KeyUnavailable)."""
        records = session.exec(select(SigningKeyRecord).where(is_active_key())).all()
        return [self.load(record.key_id).key_id for record in records]


def init_app(app) -> None:
    app.extensions["vouchers_keyring"] = KeyRing(app.config["VOUCHERS_KEYS_DIR"],
                                                 app.config["VOUCHERS_KEY_PASSPHRASE"])


def rotate_region_key(session: Session, keyring: "KeyRing", *, region: str, keys_dir: str, passphrase: str,
                      origin: str, actor: str) -> tuple[SigningKeyRecord, SigningKeyRecord]:
    """Retire the region's active key and make a new one, in one transaction.

    The old key keeps its public half and gets a validity end, so everything it
    signed still verifies; the rotation itself is a ledger entry signed by the
    new key (valid from the same instant), naming both keys and endorsed by the
    old one (ledger/endorsement.py), so that a verifier who trusts only the
    first keys can follow the region from key to key.
    """
    from voucher_service.clock import rfc3339, utc_now
    from voucher_service.journal import store as journal
    from voucher_service.ledger.endorsement import endorse
    from voucher_service.ledger.note import verifier_key

    journal.lock_ledger(session)
    old = active_key_record(session, region)
    if old is None:
        raise KeyUnavailable(f"region {region} has no active signing key to rotate")
    old_key = keyring.load(old.key_id)  # the passphrase must open the current key before we replace it
    now_str = rfc3339(utc_now())
    old.valid_until = now_str
    session.add(old)
    session.flush()
    new = create_region_key(session, region=region, keys_dir=keys_dir, passphrase=passphrase, origin=origin,
                            now_str=now_str)
    data = {"retired_key_id": old.key_id, "key_id": new.key_id,
            "note_key": verifier_key(new.note_name, bytes(new.public_key)), "valid_from": now_str}
    data["endorsement"] = endorse(region, data, old.key_id, old_key.sign)
    journal.append(session, keyring.signer_for(session), kind="key.rotated", region=region, actor=actor,
                   refs={"region": region}, data=data)
    return old, new
