"""Notification use cases, run in the caller's transaction: a booking's notices (written with
the change they report), the password reset mail and the "password changed" one, the calendar
feed secret, the reminder opt-out."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import Session

from tutorbook.accounts import resets
from tutorbook.accounts.models import User
from tutorbook.config import Settings
from tutorbook.db.columns import read_columns
from tutorbook.notifications import repository as outbox

REMINDER_KINDS = ("reminder.parent", "reminder.teacher")


# Built once: the recipients' address and reminders choice, not whole users (no ORM objects).
_RECIPIENTS = sa.select(User.id, User.email, User.reminders_opt_out).where(
    User.id.in_(sa.bindparam("ids", expanding=True))
)


def booking_notice(
    session: Session,
    *,
    booking_id: uuid.UUID,
    recipients: dict[str, uuid.UUID],
    version: int,
    now: datetime,
    payload: Mapping[str, object] | None = None,
    not_before: datetime | None = None,
    addresses: Mapping[uuid.UUID, str] | None = None,
) -> int:
    """One notification per `kind -> user id` in `recipients`; how many were new. Reminders
    are not written for a user who turned them off. `addresses`: the recipients' email addresses,
    read in this request already (no reminder among the kinds): no read of the users."""
    if (
        addresses is not None
        and set(recipients.values()) <= addresses.keys()
        and not set(REMINDER_KINDS) & set(recipients)
    ):
        known = [
            outbox.Notice(user_id=uid, to=addresses[uid], kind=kind, payload=dict(payload or {}))
            for kind, uid in recipients.items()
        ]
        return outbox.enqueue_many(
            session, known, booking_id=booking_id, version=version, now=now, not_before=not_before
        )
    users = {u.id: u for u in read_columns(session, _RECIPIENTS, {"ids": list(set(recipients.values()))})}
    notices = [
        outbox.Notice(user_id=user.id, to=user.email, kind=kind, payload=dict(payload or {}))
        for kind, user_id in recipients.items()
        if (user := users.get(user_id)) is not None and not (kind in REMINDER_KINDS and user.reminders_opt_out)
    ]
    return outbox.enqueue_many(session, notices, booking_id=booking_id, version=version, now=now, not_before=not_before)


def known_rows(
    *,
    booking_id: uuid.UUID,
    recipients: dict[str, uuid.UUID],
    version: int,
    now: datetime,
    addresses: Mapping[uuid.UUID, str],
) -> list[dict[str, Any]] | None:
    """The outbox rows `booking_notice` would add, due now, when it needs no read (every
    recipient's address known, no reminder among the kinds), for the caller to write in a
    statement of its own with the workers' wake-up; None when it would read the users."""
    if not set(recipients.values()) <= addresses.keys() or set(REMINDER_KINDS) & set(recipients):
        return None
    known = [outbox.Notice(user_id=uid, to=addresses[uid], kind=kind, payload={}) for kind, uid in recipients.items()]
    return outbox.rows_for(known, booking_id=booking_id, version=version, now=now, not_before=None)


def change_notice(
    session: Session,
    *,
    booking_id: uuid.UUID,
    recipients: dict[str, uuid.UUID],
    version: int,
    now: datetime,
    payload: Mapping[str, object],
    window: timedelta,
) -> int:
    """The notices of a change that may come in a burst (a lesson moved ten times in a minute):
    sent `window` after it, and any such notice of the booking still waiting is skipped, so the
    people hear once, of the latest state. The earliest `from` of the skipped ones is kept: the
    email says where the lesson was when they were last told."""
    waiting = outbox.supersede(session, booking_id=booking_id, kinds=tuple(recipients), now=now)
    froms = [str(p["from"]) for p in waiting if p.get("from")] + ([str(payload["from"])] if payload.get("from") else [])
    merged = {**payload, **({"from": min(froms, key=datetime.fromisoformat)} if froms else {})}
    return booking_notice(
        session,
        booking_id=booking_id,
        recipients=recipients,
        version=version,
        now=now,
        payload=merged,
        not_before=now + window,
    )


def resend(
    session: Session,
    *,
    booking_id: uuid.UUID,
    recipients: dict[str, uuid.UUID],
    sequence: int,
    now: datetime,
) -> int:
    """The same notices once more (an operator's "resend the confirmation"), under a version
    none of them has had; their invite keeps the booking's `sequence`, so a later change's
    invite still supersedes it. How many were written."""
    version = outbox.next_version(session, booking_id=booking_id, kinds=tuple(recipients), at_least=sequence + 1)
    return booking_notice(
        session,
        booking_id=booking_id,
        recipients=recipients,
        version=version,
        now=now,
        payload={"sequence": sequence, "resent": True},
    )


def request_password_reset(session: Session, *, email: str, settings: Settings, now: datetime) -> bool:
    """A reset token and its email, in one transaction; False (and nothing written) when no
    account has this email, or its last reset is less than TUTORBOOK_PASSWORD_RESET_INTERVAL_MINUTES
    old. The caller answers the same either way."""
    started = resets.start(
        session,
        email=email,
        ttl=timedelta(minutes=settings.password_reset_ttl_minutes),
        every=timedelta(minutes=settings.password_reset_interval_minutes),
        now=now,
    )
    if started is None:
        return False
    user, token = started
    # The raw token waits in the outbox until the mail goes out, then it is wiped (flows/mail.py).
    return account_notice(session, user=user, kind="password_reset", payload={"token": token}, now=now)


def finish_password_reset(
    session: Session, *, token: str, password: str, hasher: PasswordHash, settings: Settings, now: datetime
) -> User:
    """Use a reset link (resets.finish) and tell the account's owner by email that the password
    was changed, in one transaction: if it was not them, they learn it at once."""
    user = resets.finish(session, token=token, password=password, hasher=hasher, settings=settings, now=now)
    account_notice(session, user=user, kind="password_changed", payload={"at": now.isoformat()}, now=now)
    return user


def calendar_stale_notice(session: Session, *, user_id: uuid.UUID, calendar: str, error: str, now: datetime) -> bool:
    """Tell a teacher that one of their calendars (`calendar`: its masked address) could not be
    read for too long and no longer blocks their times. Written once per time it goes stale."""
    user = session.get(User, user_id)
    if user is None:
        return False
    payload = {"calendar": calendar, "error": error[:300]}
    return account_notice(session, user=user, kind="calendar_stale.teacher", payload=payload, now=now)


def account_notice(session: Session, *, user: User, kind: str, payload: dict[str, str], now: datetime) -> bool:
    """An email about the account itself (no booking) to its owner, through the outbox."""
    return outbox.enqueue(
        session, booking_id=None, user_id=user.id, to=user.email, kind=kind, version=0, payload=payload, now=now
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_calendar_secret(session: Session, *, user_id: uuid.UUID) -> str:
    """A fresh secret for the user's feed URL; the previous URL stops working."""
    secret = secrets.token_urlsafe(24)
    session.execute(sa.update(User).where(User.id == user_id).values(calendar_token_hash=_digest(secret)))
    return secret


def revoke_calendar(session: Session, *, user_id: uuid.UUID) -> None:
    session.execute(sa.update(User).where(User.id == user_id).values(calendar_token_hash=None))


def calendar_owner(session: Session, *, secret: str) -> User | None:
    """The user whose feed this secret opens, or None."""
    if not secret or len(secret) > 100:
        return None
    return session.scalar(sa.select(User).where(User.calendar_token_hash == _digest(secret)))


def set_reminders(session: Session, *, user_id: uuid.UUID, enabled: bool) -> None:
    """Turn the 24 h / 1 h reminders on or off (confirmations and security mail always go)."""
    session.execute(sa.update(User).where(User.id == user_id).values(reminders_opt_out=not enabled))


def mark_undeliverable(session: Session, *, user_id: uuid.UUID, now: datetime) -> None:
    session.execute(sa.update(User).where(User.id == user_id).values(mail_undeliverable_at=now))


def reminders_off(session: Session, *, user_id: uuid.UUID) -> bool:
    return bool(session.scalar(sa.select(User.reminders_opt_out).where(User.id == user_id)))
