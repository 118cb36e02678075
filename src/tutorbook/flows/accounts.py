"""Logging in: the throttled password check, in two transactions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from tutorbook.accounts import service
from tutorbook.accounts.models import User
from tutorbook.flows.services import Services


def log_in(svc: Services, *, email: str, password: str, address: str, now: datetime) -> User:
    """The user with this email and password, throttled: 429 when this account or address must
    wait, 401 for a wrong password. Two transactions: the attempt is counted (and committed)
    first, so a wrong password stays counted while the check's own transaction rolls back."""
    throttle = svc.login_throttle
    keys = throttle.keys(email=email, address=address)
    svc.tx_sync(throttle.attempt, keys, now=now)

    def check(session: Session) -> User:
        user = service.authenticate(session, hasher=svc.hasher, email=email, password=password)
        throttle.succeeded(session, keys)
        return user

    return svc.tx_sync(check)
