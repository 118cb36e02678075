"""The end of a Confirmed booking: cancelled with the refund its terms give (by either side or
an admin), or completed; and an admin's other actions on a booking (a refund without
cancelling, a confirmation sent again, a note in its history)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tutorbook.accounts import service as accounts
from tutorbook.bookings import crediting, lifecycle, outbox, policy, refunds
from tutorbook.bookings import repository as repo
from tutorbook.bookings.lifecycle import ADMIN_REFUND, Reason, Status
from tutorbook.bookings.lookup import get_for, must_get
from tutorbook.bookings.models import Booking, Refund
from tutorbook.bookings.outcomes import Followups, Outcome, OutcomeKind
from tutorbook.bookings.policy import RefundChoice
from tutorbook.bookings.reserving import terms_of
from tutorbook.config import Settings
from tutorbook.errors import BadRequest, Conflict, Forbidden, Unprocessable
from tutorbook.identity import AuthUser, Role
from tutorbook.notifications import service as notices
from tutorbook.validation import is_single_line


def cancel_reason(user: AuthUser) -> Reason:
    """The reason a paid booking is cancelled with when `user` cancels it."""
    return lifecycle.CANCELLED_BY[user.role]


def refund_preview(booking: Booking, *, reason: Reason, settings: Settings, now: datetime) -> int:
    """What a cancellation by `reason` would refund now, under the booking's stored terms."""
    terms = terms_of(booking, settings=settings)
    return policy.refund_amount(
        reason=reason,
        price=booking.price_amount,
        already_refunded=booking.refunded_amount,
        starts_at=booking.starts_at,
        now=now,
        full_before_hours=terms.full_refund_hours,
        late_percent=terms.late_refund_percent,
    )


def cancel_confirmed(
    session: Session,
    *,
    user: AuthUser,
    booking_id: uuid.UUID,
    settings: Settings,
    now: datetime,
    note: str | None = None,
) -> Outcome:
    """Confirmed -> Cancelled with the refund the policy gives, requested in the same transaction.
    `note`: an optional word to the other side (a teacher's reason), kept in the history and
    shown in the cancellation notice."""
    note = optional_note(note)
    booking = get_for(session, user=user, booking_id=booking_id)
    if booking.status != Status.CONFIRMED:
        return Outcome(OutcomeKind.NOT_CONFIRMED, booking)
    reason = cancel_reason(user)
    credit = crediting.paid_with_credit(booking)
    give_back = credit and crediting.credit_comes_back(booking, reason=reason, settings=settings, now=now)
    amount = 0 if credit else refund_preview(booking, reason=reason, settings=settings, now=now)
    change = lifecycle.cancel(Status.CONFIRMED, reason=reason, now=now)
    if not repo.apply(session, booking, change, actor=user.actor, note=note):
        return Outcome(OutcomeKind.NOT_CONFIRMED, booking)
    followups = Followups(unlinks=[(booking.meeting_provider, booking.meeting_external_id, booking.meeting_url)])
    if amount > 0:
        refund = refunds.request(session, booking=booking, amount=amount, reason=reason.value, now=now)
        followups.refunds.append(refund.id)
    payload: dict[str, Any] = {"refund": amount, "reason": reason.value, "by": user.role}
    if credit:  # a credit-paid lesson: its credit comes back on full-refund terms, else it is used up
        payload["creditReturned"] = give_back and crediting.return_credit(
            session, booking, actor=user.actor, reason=reason.value, now=now
        )
    if note:
        payload["note"] = note
    outbox.notify(session, booking, ("cancelled.parent", "cancelled.teacher"), now=now, payload=payload)
    return Outcome(OutcomeKind.CANCELLED, booking, followups)


NOTE_MAX = 500


def check_note(note: str | None) -> str:
    """An admin's reason: required, one paragraph of at most NOTE_MAX characters (422 otherwise)."""
    text = " ".join((note or "").split())
    problem = None
    if not text:
        problem = "say why (it is kept in the booking's history)"
    elif len(text) > NOTE_MAX:
        problem = f"at most {NOTE_MAX} characters"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        problem = "no control characters"
    if problem:
        raise Unprocessable("A reason is needed", data=[{"field": "reason", "message": problem}])
    return text


def record_admin_action(
    session: Session,
    *,
    booking_id: uuid.UUID,
    action: str,
    actor: str,
    note: str | None,
    detail: str | None,
    now: datetime,
) -> None:
    """An admin's action on a booking, for its history on the console."""
    must_get(session, booking_id=booking_id)
    repo.record_action(session, booking_id, action=action, actor=actor, note=note, detail=detail, at=now)


def admin_refund(booking: Booking, *, choice: RefundChoice, settings: Settings, now: datetime) -> int:
    """What an admin's cancellation refunds: all that is left, the parent's policy now, or nothing."""
    choice = RefundChoice(choice)
    if choice == RefundChoice.NONE:
        return 0
    if choice == RefundChoice.POLICY:
        return refund_preview(booking, reason=Reason.PARENT_CANCELLED, settings=settings, now=now)
    return max(booking.price_amount - booking.refunded_amount, 0)


def cancel_as_admin(
    session: Session,
    *,
    admin: AuthUser,
    booking_id: uuid.UUID,
    refund: RefundChoice,
    note: str,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """Confirmed -> Cancelled by an admin, with the refund they chose and their reason, in one
    transaction: the status history row (actor: the admin, note: the reason), the refund to
    send, an admin action naming the choice and the amount, and both sides' notices."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only an admin chooses the refund")
    note = check_note(note)
    booking = must_get(session, booking_id=booking_id)
    if booking.status != Status.CONFIRMED:
        return Outcome(OutcomeKind.NOT_CONFIRMED, booking)
    credit = crediting.paid_with_credit(booking)
    give_back = credit and (
        RefundChoice(refund) == RefundChoice.FULL
        or (
            RefundChoice(refund) == RefundChoice.POLICY
            and crediting.credit_comes_back(booking, reason=Reason.PARENT_CANCELLED, settings=settings, now=now)
        )
    )
    amount = 0 if credit else admin_refund(booking, choice=refund, settings=settings, now=now)
    change = lifecycle.cancel(Status.CONFIRMED, reason=Reason.ADMIN_CANCELLED, now=now)
    if not repo.apply(session, booking, change, actor=admin.actor, note=note):
        return Outcome(OutcomeKind.NOT_CONFIRMED, booking)
    followups = Followups(unlinks=[(booking.meeting_provider, booking.meeting_external_id, booking.meeting_url)])
    if amount > 0:
        row = refunds.request(session, booking=booking, amount=amount, reason=Reason.ADMIN_CANCELLED.value, now=now)
        followups.refunds.append(row.id)
    detail = f"refund: {RefundChoice(refund).value} ({amount} {booking.currency})"
    if credit:
        returned = give_back and crediting.return_credit(
            session, booking, actor=admin.actor, reason=Reason.ADMIN_CANCELLED.value, now=now
        )
        detail = f"refund: {RefundChoice(refund).value} (credit {'returned' if returned else 'used up'})"
    repo.record_action(session, booking.id, action="cancel", actor=admin.actor, note=note, detail=detail, at=now)
    # Both sides are told as for any cancellation (the email and its calendar CANCEL).
    payload = {"refund": amount, "reason": Reason.ADMIN_CANCELLED.value, "by": str(admin.role)}
    outbox.notify(session, booking, ("cancelled.parent", "cancelled.teacher"), now=now, payload=payload)
    return Outcome(OutcomeKind.CANCELLED, booking, followups)


_ADMIN_REFUNDS = uuid.UUID("0b7f3c36-2f55-4c55-9d8e-5a4f4a3e7c21")  # uuid5 namespace: refund id per form key


def refundable(session: Session, *, booking: Booking) -> int:
    """What is left to give back of the booking's payment (asked-for refunds count)."""
    if booking.stripe_payment_intent_id is None or booking.paid_at is None:
        return 0
    return max(booking.price_amount - refunds.promised(session, booking=booking), 0)


def refund_as_admin(
    session: Session,
    *,
    admin: AuthUser,
    booking_id: uuid.UUID,
    amount: int,
    note: str,
    key: str,
    now: datetime,
) -> Outcome:
    """An admin gives back `amount` (minor units) of a paid booking without cancelling it, with
    a reason, in one transaction: the refund to send (through the refund outbox, so Stripe gets
    it after the commit and reconcile re-sends it if that fails) and an admin action. At most what
    is left (422 otherwise). `key` is the form's one-time key: the same key asks once (a
    resubmitted form or a double click refunds once). kind: "refunded", or "repeated" for a key
    already used."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only an admin refunds without cancelling")
    note = check_note(note)
    if not key or not is_single_line(key, max_length=100):
        raise Unprocessable("This form has no key; reload the page", data=[{"field": "key", "message": "missing"}])
    booking = must_get(session, booking_id=booking_id)
    repo.lock_teacher(session, booking.teacher_id)  # two admins at once cannot both give back the rest
    session.refresh(booking)
    refund_id = uuid.uuid5(_ADMIN_REFUNDS, f"{booking.id}:{key}")
    if session.get(Refund, refund_id) is not None:
        return Outcome(OutcomeKind.REPEATED, booking)
    if booking.status not in (Status.CONFIRMED, Status.COMPLETED) or booking.stripe_payment_intent_id is None:
        raise Conflict(f"A {Status(booking.status).label} booking has no payment to refund here")
    left = refundable(session, booking=booking)
    if amount <= 0 or amount > left:
        raise Unprocessable(
            "Refund an amount from 0.01 up to what is left",
            data=[{"field": "amount", "message": f"more than 0 and at most {left} (minor units)", "left": left}],
        )
    refund = refunds.request(  # under the form key's id, checked unused above under the teacher's lock
        session, booking=booking, amount=amount, reason=ADMIN_REFUND, now=now, refund_id=refund_id
    )
    detail = f"refund: {amount} {booking.currency} without cancelling ({left - amount} left)"
    repo.record_action(session, booking.id, action="refund", actor=admin.actor, note=note, detail=detail, at=now)
    return Outcome(OutcomeKind.REFUNDED, booking, Followups(refunds=[refund.id]))


RESEND_TO: dict[str, tuple[str, ...]] = {
    "parent": ("confirmed.parent",),
    "teacher": ("confirmed.teacher",),
    "both": ("confirmed.parent", "confirmed.teacher"),
}


def optional_note(note: str | None) -> str | None:
    """An admin's optional remark: None when blank, else check_note's rules."""
    return check_note(note) if note and note.strip() else None


def resend_confirmation(
    session: Session,
    *,
    admin: AuthUser,
    booking_id: uuid.UUID,
    to: str,
    note: str | None,
    now: datetime,
) -> int:
    """The confirmation email (with its invite) written to the outbox again for the parent, the
    teacher or both, and an admin action naming who it went to, in one transaction. Only a
    Confirmed booking has a confirmation to resend (409 otherwise). How many were written."""
    if admin.role != Role.ADMIN:
        raise Forbidden("Only an admin resends a confirmation")
    kinds = RESEND_TO.get(to)
    if kinds is None:
        raise Unprocessable("Choose who gets it", data=[{"field": "to", "message": "parent, teacher or both"}])
    remark = optional_note(note)
    booking = must_get(session, booking_id=booking_id)
    if booking.status != Status.CONFIRMED:
        raise Conflict(f"A {Status(booking.status).label} booking has no confirmation to resend")
    who = {"parent": booking.parent_id, "teacher": booking.teacher_id}
    recipients = {kind: who[kind.rsplit(".", 1)[1]] for kind in kinds}
    written = notices.resend(
        session, booking_id=booking.id, recipients=recipients, sequence=repo.version(session, booking.id), now=now
    )
    addresses = ", ".join(
        f"{kind.rsplit('.', 1)[1]} {accounts.get_user(session, user_id).email}" for kind, user_id in recipients.items()
    )
    detail = f"to {addresses}"
    repo.record_action(
        session, booking.id, action="resend_confirmation", actor=admin.actor, note=remark, detail=detail, at=now
    )
    return written


def complete(session: Session, *, user: AuthUser, booking_id: uuid.UUID, now: datetime) -> Booking:
    """The teacher (or an admin) marks a Confirmed session completed once it has started."""
    booking = get_for(session, user=user, booking_id=booking_id)
    if user.role == Role.PARENT:
        raise Forbidden("Only the teacher or an admin can mark a session completed")
    if booking.status == Status.COMPLETED:
        return booking
    if booking.status != Status.CONFIRMED:
        raise BadRequest(f"A {Status(booking.status).label} booking cannot be completed")
    change = lifecycle.complete(
        Status.CONFIRMED, now=now, starts_at=booking.starts_at, ends_at=booking.ends_at, by_job=False
    )
    if not repo.apply(session, booking, change, actor=user.actor):
        raise Conflict("The booking changed meanwhile; reload and try again")
    return booking
