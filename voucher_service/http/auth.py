"""Opaque bearer tokens bound to a role and an enterprise, provider or region.

A token is random, shown once, and stored only as its SHA-256: a database
reader cannot replay it. Tokens expire and can be revoked.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam
from sqlmodel import Session, select

from voucher_service.clock import new_id, rfc3339
from voucher_service.models import ApiToken

ROLES = ("sme", "provider", "officer", "finance", "auditor", "admin")
TOKEN_PREFIX = "vt_"
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True)
class Principal:
    token_id: str
    principal_id: str
    role: str
    region: str | None = None
    enterprise_id: str | None = None
    provider_id: str | None = None


class BindingError(ValueError):
    pass


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, *, role: str, region=None, enterprise_id=None, provider_id=None,
                 principal_id=None, ttl_days: int = 90, now: datetime | None = None) -> tuple[str, ApiToken]:
    if role not in ROLES:
        raise BindingError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    needed = {"sme": ("enterprise", enterprise_id), "provider": ("provider", provider_id),
              "officer": ("region", region), "finance": ("region", region)}.get(role)
    if needed and not needed[1]:
        raise BindingError(f"a {role} token must be bound with --{needed[0]}")
    if role in ("auditor", "admin") and (region or enterprise_id or provider_id):
        raise BindingError(f"a {role} token is not bound to a region, enterprise or provider")
    # Keep only the binding the role uses, so a token can never carry two.
    if role != "sme":
        enterprise_id = None
    if role != "provider":
        provider_id = None
    if role not in ("officer", "finance"):
        region = None
    now = now or datetime.now(timezone.utc)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = new_id("tok")
    row = ApiToken(id=token_id, token_hash=token_digest(token), principal_id=principal_id or new_id("usr"),
                   role=role, region=region, enterprise_id=enterprise_id, provider_id=provider_id,
                   created_at=rfc3339(now), expires_at=rfc3339(now + timedelta(days=ttl_days)))
    session.add(row)
    session.flush()
    return token, row


# Core, not an ORM object, and built once: every request pays for this lookup.
_t = ApiToken.__table__.c
_TOKEN_BY_DIGEST = select(_t.id, _t.token_hash, _t.principal_id, _t.role, _t.region, _t.enterprise_id,
                          _t.provider_id, _t.revoked_at, _t.expires_at).where(_t.token_hash == bindparam("digest"))


def authenticate(session: Session, token: str, now: datetime | None = None) -> Principal | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = token_digest(token)
    row = session.connection().execute(_TOKEN_BY_DIGEST, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None or row.expires_at <= rfc3339(now or datetime.now(timezone.utc)):
        return None
    return Principal(token_id=row.id, principal_id=row.principal_id, role=row.role, region=row.region,
                     enterprise_id=row.enterprise_id, provider_id=row.provider_id)


def revoke_token(session: Session, token_id: str, now: datetime | None = None) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = rfc3339(now or datetime.now(timezone.utc))
        session.add(row)
        session.flush()
    return True
