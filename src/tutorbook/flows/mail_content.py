"""What a message says: each outbox item composed from the booking as it is now (or skipped, or
kept waiting, when that is no longer true or not yet ready), its calendar entry (the same UID and
SEQUENCE in the invites, the download and the feed), and the unsubscribe link. Sending is
`flows/mail.py`."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from tutorbook.accounts.models import User
from tutorbook.bookings import lifecycle, lists
from tutorbook.bookings import repository as bookings
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.clock import as_utc
from tutorbook.config import Settings
from tutorbook.identity import Role
from tutorbook.notifications import calendar, render
from tutorbook.notifications import repository as outbox
from tutorbook.notifications.render import Mail, moment, money, when
from tutorbook.series import invite

LINK_POLL = timedelta(minutes=1)
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
    if item.kind == "credits_expiring.parent":  # issue #28: sent once per lot and mark
        expires = _instant(item.payload.get("expiresAt"))
        context = {
            **base,
            "count": str(item.payload.get("count", "")),
            "teacher": str(item.payload.get("teacher", "")),
            "days": str(item.payload.get("days", "")),
            "expires": moment(expires, user.time_zone or "UTC", user.locale) if expires else "",
            "book_url": f"{public}/teachers/{item.payload.get('teacherId', '')}",
            "credits_url": f"{public}/credits",
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
        # A series' lesson whose card charge failed: the link to pay it, and by when.
        "pay_url": str(item.payload.get("link") or ""),
        "pay_by": moment(pay_by, zone, loc) if (pay_by := _instant(item.payload.get("deadline"))) else "",
        "needs_authentication": item.payload.get("failure") == "requires_action",
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
        weekly = invite.of_booking(session, booking_id=booking.id, settings=settings)
        if weekly is not None:  # a series' lesson: the series' one recurring invite, updated
            mail.invite = calendar.series_invite(
                weekly,
                organizer=_address(settings.sender),
                attendee=item.to,
                attendee_name=user.full_name,
                public_url=public,
                now=now,
            )
            mail.invite_method = "CANCEL" if weekly.cancelled else "REQUEST"
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
    later update or cancellation by email replaces it, never a second event beside it. A series'
    lesson: the series' recurring invite."""
    weekly = invite.of_booking(session, booking_id=booking.id, settings=settings)
    if weekly is not None:
        return calendar.series_invite(
            weekly,
            organizer=_address(settings.sender),
            attendee=attendee,
            attendee_name=attendee_name,
            public_url=settings.public_url,
            now=now,
        )
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
    if item.kind == "series_payment_due.parent" and status != Status.PENDING:
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
