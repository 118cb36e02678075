"""The failed-login throttle, kept in the database so that every replica shares it.

Three failure counters per attempt, each with free failures and then a delay that doubles with
every further failure (15 s, 30 s, 60 s, ... at most the window); failures are forgotten after a
window without one:

- the account on this address: `max_failures` free; a right password clears it, so one person's
  typos cost nothing much;
- the address, whatever the account: 10x as many (a school or a NAT shares one address); a right
  password does not clear it (a guesser's own account must not wash its guesses away);
- the account, from every address: 2x as many, counted only by failures. Its delay holds back only
  addresses that have already failed on this account and have not logged in to it in the last
  30 days: a stranger guessing cannot lock the owner out, nor turn the owner's typo at home into
  a 15-minute wait, yet a guesser pays the growing delay, and a botnet gets about one guess per
  address.

Only failures count: a right password is never refused because of other right passwords. The
attempts of one account from one address run their password checks one at a time in a process
(`gate`), so parallel guesses there cannot slip past the count while Argon2 runs; parallel right
ones just wait for each other (one Argon2 each). The check holds no database lock.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
KNOWN_FOR = timedelta(days=30)  # a right password from an address vouches for it this long
GATE_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Keys:
    pair: str
    account: str
    address: str
    known: str  # a right password from this address on this account: failures 0, the time

    def counted(self) -> list[str]:
        return [self.pair, self.account, self.address]

    def all(self) -> list[str]:
        return [*self.counted(), self.known]


class LoginThrottle:
    def __init__(self, *, max_failures: int, window_seconds: int, secret: str):
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)
        self._secret = secret.encode()
        self._gates: dict[str, list[Any]] = {}  # pair key -> [lock, users]
        self._gates_lock = threading.Lock()

    def keys(self, *, email: str, address: str) -> Keys:
        """The throttle keys of this email (normalised as at login) from this address."""
        email = email.strip().lower()
        return Keys(
            pair=self._key("pair", email, address),
            account=self._key("account", email),
            address=self._key("ip", address),
            known=self._key("known", email, address),
        )

    @contextmanager
    def gate(self, keys: Keys) -> Iterator[None]:
        """One password check at a time per account and address in this process (others wait)."""
        with self._gates_lock:
            entry = self._gates.setdefault(keys.pair, [threading.Lock(), 0])
            entry[1] += 1
        try:
            if not entry[0].acquire(timeout=GATE_TIMEOUT_SECONDS):
                raise TooManyRequests(headers={"Retry-After": "1"})
            try:
                yield
            finally:
                entry[0].release()
        finally:
            with self._gates_lock:
                entry[1] -= 1
                if entry[1] == 0:
                    self._gates.pop(keys.pair, None)

    def check(self, session: Session, keys: Keys, *, now: datetime) -> None:
        """429 with Retry-After when this attempt must wait (read only: failures alone count)."""
        rows = {r.key: r for r in session.scalars(sa.select(LoginFailure).where(LoginFailure.key.in_(keys.all())))}
        live = {k: r for k, r in rows.items() if now - r.last_failed_at < self.window}
        waits = [
            self._wait(live.get(keys.pair), free=self.max_failures, now=now),
            self._wait(live.get(keys.address), free=self.max_failures * ADDRESS_FACTOR, now=now),
        ]
        known = keys.known in rows and now - rows[keys.known].last_failed_at < KNOWN_FOR
        if keys.pair in live and not known:  # the account's delay: addresses that failed on it, not the owner's
            waits.append(self._wait(live.get(keys.account), free=self.max_failures * ACCOUNT_FACTOR, now=now))
        wait = max(waits)
        if wait > 0:
            raise TooManyRequests(headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def failed(self, session: Session, keys: Keys, *, now: datetime, only_address: bool = False) -> None:
        """Count a failure on the pair, the account and the address (`only_address`: the address alone)."""
        counted = [keys.address] if only_address else keys.counted()
        _lock(session, counted)
        rows = {r.key: r for r in session.scalars(sa.select(LoginFailure).where(LoginFailure.key.in_(counted)))}
        for key in counted:
            row = rows.get(key)
            if row is None:
                session.add(LoginFailure(key=key, failures=1, last_failed_at=now))
            else:
                row.failures = row.failures + 1 if now - row.last_failed_at < self.window else 1
                row.last_failed_at = now
        session.flush()

    def succeeded(self, session: Session, keys: Keys, *, now: datetime) -> None:
        """The right password: forget this account's failures from this address, and remember the
        address as the owner's for KNOWN_FOR (the account's and the address's failures stay)."""
        _lock(session, [keys.pair, keys.known])
        session.execute(sa.delete(LoginFailure).where(LoginFailure.key.in_([keys.pair, keys.known])))
        session.add(LoginFailure(key=keys.known, failures=0, last_failed_at=now))
        session.flush()

    def delay(self, failures: int, *, free: int) -> timedelta:
        """How long after the last failure the next attempt waits."""
        if failures < free:
            return timedelta(0)
        return min(self.window, timedelta(seconds=FIRST_DELAY_SECONDS * 2.0 ** min(failures - free, 40)))

    def _wait(self, row: LoginFailure | None, *, free: int, now: datetime) -> float:
        """Seconds this attempt must still wait: none while free failures are left. (`now` is the
        attempt's arrival; attempts queued at the gate may see a failure recorded by one that
        arrived after them, a `last_failed_at` later than their `now`: with no delay due, that
        must not turn into a wait.)"""
        if row is None:
            return 0
        delay = self.delay(row.failures, free=free)
        if not delay:
            return 0
        return (row.last_failed_at + delay - now).total_seconds()

    def _key(self, *parts: str) -> str:
        return hmac.new(self._secret, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()


def forget_stale(session: Session, *, before: datetime) -> int:
    """Delete the failures older than `before` (the purge job: now - window), and the addresses
    known by a right password older than KNOWN_FOR before that (their rows have 0 failures)."""
    stale = sa.delete(LoginFailure).where(
        sa.or_(
            sa.and_(LoginFailure.failures > 0, LoginFailure.last_failed_at < before),
            LoginFailure.last_failed_at < before - KNOWN_FOR,
        )
    )
    return cast(sa.CursorResult[Any], session.execute(stale)).rowcount


def _lock(session: Session, keys: list[str]) -> None:
    """Serialise attempts on the same keys. SQLite already has one writer at a time (BEGIN
    IMMEDIATE); PostgreSQL takes transaction-scoped advisory locks, in one order (no deadlocks)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for lock_id in sorted(int.from_bytes(bytes.fromhex(k)[:8], "big", signed=True) for k in set(keys)):
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id)))
