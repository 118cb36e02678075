"""Logging in and registering, throttled: the password check, and the "this email has an account" answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from tutorbook.accounts import service
from tutorbook.accounts.models import User
from tutorbook.config import Settings
from tutorbook.errors import Unauthorized
from tutorbook.flows.services import Services
from tutorbook.identity import Role
from tutorbook.teachers import service as teachers


def log_in(svc: Services, *, email: str, password: str, address: str, now: datetime) -> User:
    """The user with this email and password, throttled: 429 when this account or address must
    wait, 401 for a wrong password. The throttle is read first (no lock held); the check runs
    behind the per-account-and-address gate; a wrong password is counted in a transaction of its
    own (the check's rolls back), a right one clears this address's slate in the check's."""
    throttle = svc.login_throttle
    keys = throttle.keys(email=email, address=address)

    def check(session: Session) -> User:
        throttle.check(session, keys, now=now)
        user = service.authenticate(session, hasher=svc.hasher, email=email, password=password)
        throttle.succeeded(session, keys, now=now)
        return user

    with throttle.gate(keys):
        try:
            return svc.tx_sync(check)
        except Unauthorized:  # the wrong password (authenticate's only 401)
            svc.tx_sync(throttle.failed, keys, now=now)
            raise


def register(
    svc: Services,
    *,
    address: str,
    email: str,
    password: str,
    full_name: str,
    role: Role,
    time_zone: str,
    now: datetime,
    settings: Settings | None = None,
    locale: str | None = None,
) -> User:
    """A new Parent or Teacher. Whether an email has an account is not hidden (a 409 says so:
    README, "Accounts and email addresses"), but each such answer counts as a failed login of
    this address, so asking it of many emails is as slow as guessing passwords."""
    throttle = svc.login_throttle
    keys = throttle.keys(email=email, address=address)
    svc.tx_sync(throttle.check, keys, now=now)
    try:

        def create(session: Session) -> User:
            user = teachers.create_user(
                session,
                hasher=svc.hasher,
                settings=settings or svc.settings,
                email=email,
                password=password,
                full_name=full_name,
                role=role,
                time_zone=time_zone,
                now=now,
            )
            if locale:  # the language of its emails' dates, kept in the same transaction
                service.remember_locale(session, user_id=user.id, locale=locale)
            return user

        return svc.tx_sync(create)
    except service.EmailTaken:
        svc.tx_sync(throttle.failed, keys, now=now, only_address=True)
        raise
