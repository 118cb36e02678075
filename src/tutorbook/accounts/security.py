"""Password hashing (Argon2), JWTs, and the failed-login throttle."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict, deque
from datetime import datetime, timedelta

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from tutorbook.config import Settings
from tutorbook.errors import TooManyRequests, Unauthorized


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


def read_token(*, settings: Settings, token: str) -> dict:
    """The claims of a valid token; Unauthorized when expired, tampered or malformed."""
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        uuid.UUID(claims["sub"])
        return claims
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Your session has expired; log in again") from exc
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise Unauthorized("Invalid token") from exc


class LoginThrottle:
    """Slows down guessing: too many failures for one email or one address in a window -> 429.

    Kept in process memory: each replica throttles on its own (documented in the README).
    """

    # One address may hold many users (a school, a NAT), so it gets a larger budget than one email.
    ADDRESS_FACTOR = 10

    def __init__(self, *, max_failures: int, window_seconds: int, clock=time.monotonic):
        self.max_failures, self.window, self.clock = max_failures, window_seconds, clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, *keys: str) -> None:
        """Raise 429 with Retry-After if any key is over the limit."""
        with self._lock:
            now = self.clock()
            wait = max((self._wait(key, now) for key in keys), default=0)
        if wait > 0:
            raise TooManyRequests(headers={"Retry-After": str(int(wait) + 1)})

    def failed(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures[key].append(self.clock())

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _wait(self, key: str, now: float) -> float:
        q = self._failures.get(key)
        if not q:
            return 0
        while q and q[0] <= now - self.window:
            q.popleft()
        limit = self.max_failures * (self.ADDRESS_FACTOR if key.startswith("ip:") else 1)
        if len(q) < limit:
            return 0
        return q[0] + self.window - now
