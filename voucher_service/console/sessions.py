"""Console sessions: a pasted token becomes an HttpOnly cookie's session.

The cookie carries a random id and nothing else. The database keeps the id's
SHA-256 and the token sealed (AES-256-GCM) under a key derived (HKDF) from the
id: the console needs the token itself to call the API as its holder, and
stores it where neither a database reader (no id) nor someone holding an old
cookie after sign-out (no row) can use it. A session ends at sign-out, after
SESSION_TTL, or when its token expires or is revoked (checked by the API on
every call the console makes with it).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import Session, delete

from voucher_service.clock import rfc3339
from voucher_service.http.auth import Principal, authenticate
from voucher_service.models import ConsoleSession

# A working day: a clerk signs in in the morning; a cookie left on a shared
# machine is dead by the next.
SESSION_TTL = timedelta(hours=12)
SESSION_ID_BYTES = 32
NONCE_BYTES = 12
_HKDF_INFO = b"vouchers console session v1"


@dataclass(frozen=True)
class SignedIn:
    token: str
    csrf_token: str
    principal: Principal


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def _key(session_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        session_id.encode("ascii", "replace"))


def open_session(db: Session, token: str, now: datetime | None = None) -> tuple[str, SignedIn] | None:
    """A new session for `token`, or None if the API would refuse the token.
    Returns the cookie's value (shown to nobody but the browser) and the session."""
    now = now or datetime.now(timezone.utc)
    principal = authenticate(db, token, now)
    if principal is None:
        return None
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = nonce + AESGCM(_key(session_id)).encrypt(nonce, token.encode("utf-8"), _digest(session_id).encode())
    csrf_token = secrets.token_urlsafe(32)
    db.add(ConsoleSession(id_digest=_digest(session_id), token_id=principal.token_id, sealed_token=sealed,
                          csrf_token=csrf_token, created_at=rfc3339(now), expires_at=rfc3339(now + SESSION_TTL)))
    db.commit()
    return session_id, SignedIn(token=token, csrf_token=csrf_token, principal=principal)


def load_session(db: Session, session_id: str | None, now: datetime | None = None) -> SignedIn | None:
    """The session this cookie value opens, if it is live and its token still authenticates."""
    if not session_id or len(session_id) > 100:
        return None
    now = now or datetime.now(timezone.utc)
    row = db.get(ConsoleSession, _digest(session_id))
    if row is None or not hmac.compare_digest(row.id_digest, _digest(session_id)):
        return None
    if row.expires_at <= rfc3339(now):
        return None
    sealed = bytes(row.sealed_token)
    try:
        token = AESGCM(_key(session_id)).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                                 row.id_digest.encode()).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        return None
    principal = authenticate(db, token, now)
    if principal is None or principal.token_id != row.token_id:
        return None
    return SignedIn(token=token, csrf_token=row.csrf_token, principal=principal)


def end_session(db: Session, session_id: str | None, now: datetime | None = None) -> None:
    """Sign-out: the row goes, and with it every copy of the cookie. Expired
    sessions are swept at the same time."""
    now = now or datetime.now(timezone.utc)
    if session_id:
        db.exec(delete(ConsoleSession).where(ConsoleSession.id_digest == _digest(session_id)))
    db.exec(delete(ConsoleSession).where(ConsoleSession.expires_at <= rfc3339(now)))
    db.commit()


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
