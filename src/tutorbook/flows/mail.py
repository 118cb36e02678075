"""Sending the outbox: claim a batch (one short transaction), compose each message from the
booking as it is now (one transaction each), send them over one SMTP connection with no
transaction open, and record each answer (a compare-and-set on the claim).

A message is sent only while it is still true: "complete your payment" only while the booking
is Pending and unpaid, reminders only while it is Confirmed and ahead. Without
TUTORBOOK_SMTP_URL the messages go to the development mailbox instead, in the same transaction
that marks them sent. A crash after the server took a message and before it is marked sent
sends it again once the claim's lease ends (with the same Message-ID): at most once otherwise."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Concatenate, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from tutorbook import tracing
from tutorbook.accounts.models import User
from tutorbook.bookings import lifecycle, lists
from tutorbook.bookings import repository as bookings
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.clock import as_utc
from tutorbook.config import Settings
from tutorbook.flows.services import Services
from tutorbook.identity import Role
from tutorbook.notifications import calendar, render
from tutorbook.notifications import repository as outbox
from tutorbook.notifications import service as notices
from tutorbook.notifications.mailer import DeliveryError, Permanent, SmtpMailer, Transient
from tutorbook.notifications.render import Mail, moment, money, when

log = logging.getLogger("tutorbook.mail")
P = ParamSpec("P")
T = TypeVar("T")

LEASE = timedelta(minutes=5)
# Recording that the SMTP server took a message, or giving back a batch the database lost mid-way,
# while the database is away for a moment (a restart, a failover, a dropped connection): tried
# again after these waits (~30 s in all) rather than left to the lease, which would send the
# message again in 5 minutes and keep the batch waiting that long (tests/cluster/test_hosts.py,
# drill 4).
RECORD_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
LINK_POLL = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=6)
REFUND_KINDS = ("refund_issued.parent", "late_payment_refunded.parent")
NO_JOIN_LINK = ("cancelled.", "refund_issued.", "late_payment_refunded.")
MOVED_BY: dict[str, str] = {
    Role.PARENT: "moved by the parent",
    Role.TEACHER: "moved by the teacher",
    Role.ADMIN: "moved by the Tutorbook team",
}


@dataclass(frozen=True)
class Skip:
    why: str


@dataclass(frozen=True)
class Wait:
    until: datetime
    why: str


def unsubscribe_signature(settings: Settings, user_id: uuid.UUID) -> str:
    """The signature in a reminder's unsubscribe link (no login needed to use it)."""
    key = settings.jwt_secret.encode()
    return hmac.new(key, b"unsubscribe:" + str(user_id).encode(), hashlib.sha256).hexdigest()


def unsubscribe_url(settings: Settings, user_id: uuid.UUID) -> str:
    sig = unsubscribe_signature(settings, user_id)
    return f"{settings.public_url.rstrip('/')}/notifications/unsubscribe?user={user_id}&sig={sig}"


def deliver(
    svc: Services, *, now: datetime, limit: int | None = None, stop: threading.Event | None = None
) -> list[tuple[uuid.UUID, str]]:
    """One batch: (notification id, outcome) for each claimed notification. A message that cannot
    be built fails alone (marked failed with the reason); the rest of the batch goes on. Once
    `stop` is set (the worker is shutting down) the messages not yet handed to the server are
    given back ("released"), for another worker to send at once."""
    settings = svc.settings
    claimed = svc.tx_sync(outbox.claim, now=now, limit=limit or settings.mail_batch_size, lease=LEASE)
    if not claimed:
        return []
    ready: list[tuple[outbox.Claimed, Mail, EmailMessage]] = []
    results: list[tuple[uuid.UUID, str]] = []
    try:
        for item in claimed:
            with tracing.continued(item.trace_parent, "mail.compose", **_span_attributes(item)):
                built = _build(svc, item=item, now=now)
            if isinstance(built, str):
                results.append((item.id, built))
            else:
                ready.append((item, *built))
    except DBAPIError as exc:  # the database went away mid-batch: give back what is not done yet
        if _connection_lost(exc):
            done = {nid for nid, _ in results}
            for item in claimed:
                if item.id not in done:
                    _retrying(svc, outbox.release, item, now=now)
        raise
    if not ready:
        return results
    if not settings.smtp_url:
        for n, (item, mail, msg) in enumerate(ready):
            if stop is not None and stop.is_set():
                return results + _release(svc, [i for i, _m, _g in ready[n:]], now=now)
            with tracing.continued(item.trace_parent, "mail.keep", **_span_attributes(item)):
                svc.tx_sync(_keep, item=item, mail=mail, msg=msg, now=now)
            results.append((item.id, "kept"))
        return results
    mailer = SmtpMailer(settings.smtp_url, timeout=settings.smtp_timeout_seconds)
    try:
        with mailer.connect() as conn:
            for n, (item, _mail, msg) in enumerate(ready):
                if stop is not None and stop.is_set():
                    return results + _release(svc, [i for i, _m, _g in ready[n:]], now=now)
                with tracing.continued(item.trace_parent, "mail.send", **_span_attributes(item)):
                    try:
                        conn.send(msg)
                    except DeliveryError as exc:
                        results.append((item.id, _failed(svc, item, exc, now=now)))
                    else:
                        _record_sent(svc, item, now=now)
                        results.append((item.id, "sent"))
    except DeliveryError as exc:  # no connection: every message not yet answered waits
        done = {nid for nid, _ in results}
        log.warning("mail server unavailable; will retry", extra={"error": str(exc)[:200]})
        for item, _mail, _msg in ready:
            if item.id not in done:
                results.append((item.id, _failed(svc, item, Transient(str(exc)), now=now)))
    return results


def _span_attributes(item: outbox.Claimed) -> dict[str, str]:
    """What a mail span says of its notification (with tracing on; the address is left out)."""
    return {"notification_id": str(item.id), "mail_kind": item.kind}
def _connection_lost(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated


def _retrying(svc: Services, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn` in one transaction, tried again through a short loss of the database. The outbox's
    marks are compare-and-sets on the claim: one that committed before its answer was lost is
    not redone."""
    for wait in (*RECORD_RETRY_S, None):
        try:
            return svc.tx_sync(fn, *args, **kwargs)
        except DBAPIError as exc:
            if wait is None or not _connection_lost(exc):
                raise
            log.warning("outbox not updated yet; trying again", extra={"error": str(exc)[:200], "wait_s": wait})
            time.sleep(wait)
    raise AssertionError("unreachable")


def _record_sent(svc: Services, item: outbox.Claimed, *, now: datetime) -> None:
    """Mark `item` sent (the server took it), through a short loss of the database."""
    _retrying(svc, outbox.mark_sent, item, now=now, payload=_scrubbed(item))


def _release(svc: Services, items: list[outbox.Claimed], *, now: datetime) -> list[tuple[uuid.UUID, str]]:
    for item in items:
        svc.tx_sync(outbox.release, item, now=now)
    log.info("mail worker stopping: claimed messages given back", extra={"count": len(items)})
    return [(item.id, "released") for item in items]


def _build(svc: Services, *, item: outbox.Claimed, now: datetime) -> tuple[Mail, EmailMessage] | str:
    """The message of `item`, or the outcome when there is none to send now ("skipped", "waiting",
    or "failed" when it cannot be built: a template, a header or an address that will not go)."""
    settings = svc.settings
    try:
        composed = svc.tx_sync(compose, item=item, settings=settings, now=now)
        if isinstance(composed, Mail):
            key = f"notification-{item.id}"
            msg = render.message(
                composed, sender=settings.sender, public_url=settings.public_url, message_key=key, now=now
            )
            return composed, msg
    except SQLAlchemyError:
        raise  # the database, not this message: the claim's lease ends and the batch is tried again
    except Exception as exc:  # whatever this one message's data does, it fails alone
        error = f"the message could not be built: {type(exc).__name__}: {exc}"
        log.exception("mail not built; marked failed", extra={"notification_id": str(item.id), "kind": item.kind})
        svc.tx_sync(outbox.mark_failed, item, now=now, error=error, payload=_scrubbed(item))
        return "failed"
    if isinstance(composed, Skip):
        svc.tx_sync(outbox.mark_skipped, item, now=now, why=composed.why, payload=_scrubbed(item))
        return "skipped"
    svc.tx_sync(outbox.retry_later, item, now=now, at=composed.until, error=composed.why, count=False)
    return "waiting"


def _scrubbed(item: outbox.Claimed) -> dict[str, object] | None:
    """The payload to keep once a message is out: a reset token is wiped."""
    return {} if "token" in item.payload else None


def _failed(svc: Services, item: outbox.Claimed, exc: DeliveryError, *, now: datetime) -> str:
    settings = svc.settings
    if isinstance(exc, Permanent) or item.attempts >= settings.mail_max_attempts:
        svc.tx_sync(_give_up, item=item, error=str(exc), permanent=isinstance(exc, Permanent), now=now)
        log.error(
            "mail not delivered; given up",
            extra={"notification_id": str(item.id), "kind": item.kind, "to": item.to, "error": str(exc)[:200]},
        )
        return "failed"
    delay = min(timedelta(seconds=settings.mail_retry_base_seconds * 2 ** (item.attempts - 1)), MAX_BACKOFF)
    svc.tx_sync(outbox.retry_later, item, now=now, at=now + delay, error=str(exc))
    return "retry"


def _give_up(session: Session, *, item: outbox.Claimed, error: str, permanent: bool, now: datetime) -> None:
    if outbox.mark_failed(session, item, now=now, error=error, payload=_scrubbed(item)) and permanent:
        notices.mark_undeliverable(session, user_id=item.user_id, now=now)


def _keep(session: Session, *, item: outbox.Claimed, mail: Mail, msg: EmailMessage, now: datetime) -> None:
    """Into the development mailbox and marked sent, in one transaction."""
    if not outbox.mark_sent(session, item, now=now, payload=_scrubbed(item)):
        return
    outbox.keep(session, notification_id=item.id, to=mail.to, subject=str(msg["Subject"]), raw=msg.as_string(), now=now)


# -- composing ----------------------------------------------------------------------------


def compose(session: Session, *, item: outbox.Claimed, settings: Settings, now: datetime) -> Mail | Skip | Wait:
    """The message for `item` as things are now, or why not (yet)."""
    user = session.get(User, item.user_id)
    if user is None:
        return Skip("the recipient is gone")
    public = settings.public_url.rstrip("/")
    base = {"product": settings.product_name, "public_url": public, "recipient_name": user.full_name}
    if item.kind == "password_reset":
        token = item.payload.get("token")
        if not token:
            return Skip("no token")
        context = {
            **base,
            "reset_url": f"{public}/reset-password?token={token}",
            "minutes": settings.password_reset_ttl_minutes,
        }
        return render.render(item.kind, to=item.to, context=context)
    if item.kind == "password_changed":
        at = _instant(item.payload.get("at")) or item.created_at
        changed_at = _moment(at, user.time_zone or "UTC")
        context = {**base, "changed_at": changed_at, "forgot_url": f"{public}/forgot-password"}
        return render.render(item.kind, to=item.to, context=context)
    if item.kind == "calendar_stale.teacher":
        context = {
            **base,
            "calendar": str(item.payload.get("calendar", "")),
            "error": str(item.payload.get("error", "")),
            "calendars_url": f"{public}/teacher/calendars",
        }
        return render.render(item.kind, to=item.to, context=context)
    booking = bookings.get(session, item.booking_id) if item.booking_id else None
    if booking is None:
        return Skip("the booking is gone")
    why = _stale(item, booking=booking, user=user, now=now)
    if why:
        return Skip(why)
    if item.kind.startswith("confirmed.") and not booking.meeting_url:
        if now < item.created_at + timedelta(minutes=settings.mail_link_wait_minutes):
            return Wait(now + LINK_POLL, "waiting for the meeting link")
    teacher_name, student_name = lists.names_for(session, booking)
    parent = session.get(User, booking.parent_id)
    zone, loc = user.time_zone or "UTC", user.locale
    refund = item.payload.get("refund")
    if item.kind in REFUND_KINDS and not refund:
        return Skip("no refund to tell of")
    moved_from = _instant(item.payload.get("from"))
    if item.kind.startswith("rescheduled.") and moved_from == booking.starts_at:
        return Skip("moved back to the time they were told of")
    busy_from, busy_to = _instant(item.payload.get("busyFrom")), _instant(item.payload.get("busyTo"))
    hours_left = (booking.starts_at - now).total_seconds() / 3600
    context = {
        **base,
        "subject": booking.subject,
        "teacher_name": teacher_name,
        "student_name": student_name,
        "parent_name": parent.full_name if parent else "",
        "when": when(booking.starts_at, booking.ends_at, zone, loc),
        # The lesson is off: its meeting link is no use, and showing it suggests otherwise.
        "meeting_url": None if item.kind.startswith(NO_JOIN_LINK) else booking.meeting_url,
        "price": money(booking.price_amount, booking.currency),
        "refund": money(refund, booking.currency) if refund else None,
        "cancelled_by": lifecycle.reason_words(item.payload.get("reason")),
        "cancelled_by_us": item.payload.get("reason") == Reason.ADMIN_CANCELLED,
        "checkout_url": booking.checkout_url or "",
        "held_until": moment(booking.checkout_expires_at, zone, loc) if booking.checkout_expires_at else "",
        "bookings_url": f"{public}/my-bookings",
        "schedule_url": f"{public}/schedule",
        "soon": "in about an hour" if hours_left <= 2 else "in about 24 hours",
        "unsubscribe_url": unsubscribe_url(settings, user.id) if item.kind.startswith("reminder.") else None,
        "moved_from": when(moved_from, moved_from + (booking.ends_at - booking.starts_at), zone, loc)
        if moved_from
        else "",
        "moved_by": MOVED_BY.get(str(item.payload.get("by", "")), "moved"),
        "note": str(item.payload.get("note") or ""),  # the canceller's word to the other side
        "busy_when": when(busy_from, busy_to, zone, loc) if busy_from and busy_to else "",
        "calendars_url": f"{public}/teacher/calendars",
    }
    mail = render.render(item.kind, to=item.to, context=context)
    if item.kind.startswith("reminder."):
        mail.headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
    if item.kind.startswith(("confirmed.", "cancelled.", "rescheduled.")):
        cancelled = item.kind.startswith("cancelled.")
        # A resent confirmation keeps the booking's sequence, so later changes still win.
        entry = calendar_entry(
            booking,
            names=(teacher_name, student_name),
            sequence=_sequence(item),
            cancelled=cancelled,
            settings=settings,
        )
        mail.invite = calendar.invite(
            entry,
            organizer=_address(settings.sender),
            attendee=item.to,
            attendee_name=user.full_name,
            public_url=public,
            now=now,
        )
        mail.invite_method = "CANCEL" if cancelled else "REQUEST"
    return mail


def calendar_entry(
    booking: Booking, *, names: tuple[str, str], sequence: int, cancelled: bool, settings: Settings
) -> calendar.Session:
    """The one calendar entry of a booking, the same in the emailed invites, the "Add to calendar"
    download and the feed (same UID, same SEQUENCE for the same state); a cancelled one carries
    no meeting link."""
    teacher_name, student_name = names
    public = settings.public_url.rstrip("/")
    link = None if cancelled else booking.meeting_url
    if cancelled:
        description = f"{settings.product_name} session, cancelled."
    else:
        description = f"{settings.product_name} session. Join: {link or public + '/my-bookings'}"
    return calendar.Session(
        booking_id=booking.id,
        sequence=sequence,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        summary=f"{booking.subject} with {teacher_name} for {student_name}",
        description=description,
        meeting_url=link,
        cancelled=cancelled,
    )


def download(
    session: Session, *, booking: Booking, attendee: str, attendee_name: str, settings: Settings, now: datetime
) -> bytes:
    """ "Add to calendar": the invite the viewer was emailed, as the booking is now (METHOD:REQUEST,
    the booking's UID and current SEQUENCE), so a calendar takes it as that same event and every
    later update or cancellation by email replaces it, never a second event beside it."""
    entry = calendar_entry(
        booking,
        names=lists.names_for(session, booking),
        sequence=bookings.version(session, booking.id),
        cancelled=booking.status == Status.CANCELLED,
        settings=settings,
    )
    return calendar.invite(
        entry,
        organizer=_address(settings.sender),
        attendee=attendee,
        attendee_name=attendee_name,
        public_url=settings.public_url,
        now=now,
    )


def _sequence(item: outbox.Claimed) -> int:
    sequence = item.payload.get("sequence")
    return sequence if isinstance(sequence, int) else item.version


def _stale(item: outbox.Claimed, *, booking: Booking, user: User, now: datetime) -> str | None:
    """Why this notice is no longer true, if it is not."""
    status = Status(booking.status)
    if item.kind == "payment_pending.parent":
        expired = booking.checkout_expires_at is not None and booking.checkout_expires_at <= now
        if status != Status.PENDING or booking.paid_at is not None or not booking.checkout_url or expired:
            return "no longer waiting for payment"
    if item.kind.startswith("reminder."):
        if status != Status.CONFIRMED or booking.starts_at <= now:
            return "no longer a confirmed session ahead"
        if user.reminders_opt_out:
            return "reminders turned off"
    if item.kind.startswith("confirmed.") and status == Status.CANCELLED:
        return "cancelled before the confirmation went out"
    if item.kind.startswith("rescheduled.") and status != Status.CONFIRMED:
        return "no longer a confirmed session"
    if item.kind.startswith("calendar_conflict.") and (status != Status.CONFIRMED or booking.starts_at <= now):
        return "no longer a confirmed session ahead"
    return None


def _instant(value: object) -> datetime | None:
    """An ISO instant from a notice's payload, or None."""
    try:
        return as_utc(datetime.fromisoformat(str(value))) if value else None
    except ValueError:
        return None


def _moment(at: datetime, zone: str) -> str:
    """ "Tue 2 Dec 2026, 15:04 CET (Europe/Berlin)": an instant on the recipient's wall clock."""
    t = as_utc(at).astimezone(ZoneInfo(zone))
    return f"{t:%a} {t.day} {t:%b %Y}, {t:%H:%M} {t:%Z} ({zone})"


def _address(sender: str) -> str:
    return sender.rsplit("<", 1)[-1].rstrip(">").strip() if "<" in sender else sender.strip()
