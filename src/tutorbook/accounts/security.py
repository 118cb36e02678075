"""Password hashing (Argon2) and JWTs (the failed-login throttle is in throttle.py)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from tutorbook.config import Settings
from tutorbook.errors import Unauthorized


def password_hasher(settings: Settings) -> PasswordHash:
    """Argon2id with the configured cost (tests use a cheap one)."""
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=settings.argon2_time_cost,
                memory_cost=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
        )
    )


def issue_token(*, settings: Settings, user_id: uuid.UUID, role: str, now: datetime, version: int = 0) -> str:
    """A signed bearer token with sub, role, the user's token version ("tv") and an expiry."""
    claims = {
        "sub": str(user_id),
        "role": role,
        "tv": version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=settings.jwt_ttl_minutes)).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


# Tokens already verified in this process -> their claims (issue #33: a caller sends the same
# token with every request, and checking its signature and parsing it again was about a tenth of a
# cached read's CPU). What a verification found never changes for the same secret and token but
# the expiry, which is checked again on every use; whether the user may still use it (disabled,
# password reset: the token version) is the caller's database read, every request, as before. Bounded:
# emptied when full.
_VERIFIED: dict[tuple[str, str], dict[str, Any]] = {}
VERIFIED_MAX = 10_000


def read_token(*, settings: Settings, token: str) -> dict[str, Any]:
    """The claims of a valid token; Unauthorized when expired, tampered or malformed."""
    key = (settings.jwt_secret, token)
    known = _VERIFIED.get(key)
    if known is not None and known["exp"] > time.time():  # as PyJWT: expired when exp <= now
        return dict(known)
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        uuid.UUID(claims["sub"])
    except jwt.ExpiredSignatureError as exc:
        _VERIFIED.pop(key, None)
        raise Unauthorized("Your session has expired; log in again") from exc
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise Unauthorized("Invalid token") from exc
    if len(_VERIFIED) >= VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[key] = dict(claims)
    return claims
