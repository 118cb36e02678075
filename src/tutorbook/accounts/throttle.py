"""The failed-login throttle, kept in the database so that every replica shares it.

Three keys per attempt, each with free failures and then a delay that doubles with every further
failure (15 s, 30 s, 60 s, ... at most the window); failures are forgotten after a window without one:

- the account on this address: `max_failures` free, so one person's typos cost nothing much;
- the address, whatever the account: 10x as many (a school or a NAT shares one address);
- the account, from every address: 2x as many, and its delay holds back only addresses that have
  already failed on this account. A stranger guessing from elsewhere cannot lock the owner out,
  yet a guesser pays the growing delay, and a botnet gets about one guess per address.

An attempt is counted as a failure before the password is checked (and uncounted when it was
right), so parallel guesses cannot slip past the count while Argon2 runs. The password check
itself holds no throttle lock.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.accounts.models import LoginFailure
from tutorbook.errors import TooManyRequests

FIRST_DELAY_SECONDS = 15  # then 30, 60, 120, ... up to the window
ADDRESS_FACTOR = 10  # one address may hold many users
ACCOUNT_FACTOR = 2  # one account, guessed at from many addresses


@dataclass(frozen=True)
class Keys:
    pair: str
    account: str
    address: str

    def all(self) -> list[str]:
        return [self.pair, self.account, self.address]


class LoginThrottle:
    def __init__(self, *, max_failures: int, window_seconds: int, secret: str):
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)
        self._secret = secret.encode()

    def keys(self, *, email: str, address: str) -> Keys:
        """The throttle keys of this email (normalised as at login) from this address."""
        email = email.strip().lower()
        return Keys(
            pair=self._key("pair", email, address),
            account=self._key("account", email),
            address=self._key("ip", address),
        )

    def attempt(self, session: Session, keys: Keys, *, now: datetime) -> None:
        """429 with Retry-After when this attempt must wait; otherwise count it as a failure."""
        _lock(session, keys.all())
        rows = {r.key: r for r in session.scalars(sa.select(LoginFailure).where(LoginFailure.key.in_(keys.all())))}
        live = {k: r for k, r in rows.items() if now - r.last_failed_at < self.window}
        waits = [
            self._wait(live.get(keys.pair), free=self.max_failures, now=now),
            self._wait(live.get(keys.address), free=self.max_failures * ADDRESS_FACTOR, now=now),
        ]
        if keys.pair in live:  # the account's delay holds back only addresses that failed on it
            waits.append(self._wait(live.get(keys.account), free=self.max_failures * ACCOUNT_FACTOR, now=now))
        wait = max(waits)
        if wait > 0:
            raise TooManyRequests(headers={"Retry-After": str(max(1, math.ceil(wait)))})
        for key in keys.all():
            row = rows.get(key)
            if row is None:
                session.add(LoginFailure(key=key, failures=1, last_failed_at=now))
            else:
                row.failures = row.failures + 1 if key in live else 1
                row.last_failed_at = now
        session.flush()

    def succeeded(self, session: Session, keys: Keys) -> None:
        """The attempt had the right password: forget this account's failures from this address,
        and uncount the attempt on the account and the address (their other failures stay)."""
        session.execute(sa.delete(LoginFailure).where(LoginFailure.key == keys.pair))
        session.execute(
            sa.update(LoginFailure)
            .where(LoginFailure.key.in_([keys.account, keys.address]), LoginFailure.failures > 0)
            .values(failures=LoginFailure.failures - 1)
        )

    def delay(self, failures: int, *, free: int) -> timedelta:
        """How long after the last failure the next attempt waits."""
        if failures < free:
            return timedelta(0)
        return min(self.window, timedelta(seconds=FIRST_DELAY_SECONDS * 2.0 ** min(failures - free, 40)))

    def _wait(self, row: LoginFailure | None, *, free: int, now: datetime) -> float:
        if row is None:
            return 0
        return (row.last_failed_at + self.delay(row.failures, free=free) - now).total_seconds()

    def _key(self, *parts: str) -> str:
        return hmac.new(self._secret, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()


def forget_stale(session: Session, *, before: datetime) -> int:
    """Delete the keys whose last failure is older than `before` (the purge job: now - window)."""
    stale = sa.delete(LoginFailure).where(LoginFailure.last_failed_at < before)
    return cast(sa.CursorResult[Any], session.execute(stale)).rowcount


def _lock(session: Session, keys: list[str]) -> None:
    """Serialise attempts on the same keys. SQLite already has one writer at a time (BEGIN
    IMMEDIATE); PostgreSQL takes transaction-scoped advisory locks, in one order (no deadlocks)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for lock_id in sorted(int.from_bytes(bytes.fromhex(k)[:8], "big", signed=True) for k in set(keys)):
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id)))
