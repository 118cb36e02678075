"""Password hashing (Argon2) and JWTs (the failed-login throttle is in throttle.py)."""

from __future__ import annotations

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


def read_token(*, settings: Settings, token: str) -> dict[str, Any]:
    """The claims of a valid token; Unauthorized when expired, tampered or malformed."""
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        uuid.UUID(claims["sub"])
        return claims
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Your session has expired; log in again") from exc
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise Unauthorized("Invalid token") from exc
