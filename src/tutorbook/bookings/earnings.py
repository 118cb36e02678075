"""What each booking's payment gave the teacher and the platform (Stripe Connect destination
charges), one transaction each: the split Stripe reports recorded on the booking, the teacher's
earnings and the platform's report.

Per paid booking: gross = the amount paid; refunded = what went back to the parent; fee = what
the platform keeps; net = what the teacher keeps. A destination charge moves money as Stripe
does (docs/payments.md, "How Stripe moves the money"): the WHOLE amount is transferred to the
teacher's account and the application fee is then taken from it, a refund reverses the transfer
in proportion to the amount refunded and refunds the fee in proportion. So fee = application fee
less its refunds, and net = transfer less its reversals, less that fee. For a payment that stayed
on the platform (the teacher had no payouts yet) net = 0 and fee = gross − refunded. Either way
net + fee = gross − refunded once Stripe's split is recorded (`settled`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.accounts.models import Student, User
from tutorbook.bookings import records
from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import PaymentSplit
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking as PS
from tutorbook.bookings.models import Payment
from tutorbook.bookings.outcomes import OutcomeKind
from tutorbook.bookings.payment_states import PaymentKind
from tutorbook.credits.models import CreditEntry, EntryKind
from tutorbook.identity import Role


@dataclass(frozen=True)
class SplitToRead:
    booking_id: uuid.UUID
    payment_intent: str


def split_to_read(session: Session, *, booking_id: uuid.UUID) -> SplitToRead | None:
    """The payment whose split to read from Stripe: a paid destination charge, else None."""
    booking = repo.get(session, booking_id)
    payment = None if booking is None else booking.payment
    if payment is None or not payment.payout_destination or not payment.stripe_payment_intent_id:
        return None
    return SplitToRead(payment.booking_id, payment.stripe_payment_intent_id)


def record_split(session: Session, *, booking_id: uuid.UUID, split: PaymentSplit, now: datetime) -> OutcomeKind:
    """Store the split Stripe reports. Amounts are totals that only grow, so answers and events
    read in any order (or at once) leave the newest."""
    booking = repo.get(session, booking_id)
    payment = None if booking is None else booking.payment
    if payment is None:
        return OutcomeKind.UNKNOWN_BOOKING
    ids: dict[str, object] = {"stripe_charge_id": split.charge_id}
    if split.transfer_id:
        ids["stripe_transfer_id"] = split.transfer_id
    if split.fee_id:  # the fee Stripe took (the one asked for, unless the checkout was made otherwise)
        ids["stripe_application_fee_id"] = split.fee_id
        ids["platform_fee_amount"] = split.fee_amount
    totals = {
        "transfer_amount": split.transfer_amount,
        "transfer_reversed_amount": split.transfer_reversed,
        "fee_refunded_amount": split.fee_refunded,
        "refunded_amount": split.refunded,
    }
    before = _snapshot(payment)
    records.grow_split(session, payment, ids=ids, totals=totals, now=now)
    return OutcomeKind.NO_CHANGE if _snapshot(payment) == before else OutcomeKind.SPLIT_RECORDED


def apply_transfer(session: Session, *, obj: dict[str, Any], now: datetime) -> tuple[OutcomeKind, PS | None]:
    """A `transfer.*` event: the transfer's totals, on the payment whose charge it pays out."""
    payment = _by(session, transfer=obj.get("id"), charge=obj.get("source_transaction"))
    if payment is None:
        return OutcomeKind.UNKNOWN_BOOKING, None
    totals = {
        "transfer_amount": int(obj.get("amount") or 0),
        "transfer_reversed_amount": int(obj.get("amount_reversed") or 0),
    }
    records.grow_split(session, payment, ids={"stripe_transfer_id": obj.get("id")}, totals=totals, now=now)
    return OutcomeKind.TRANSFER_RECORDED, repo.get(session, payment.booking_id)


def apply_fee(session: Session, *, obj: dict[str, Any], now: datetime) -> tuple[OutcomeKind, PS | None]:
    """An `application_fee.*` event: the fee's totals, on the payment whose charge it is of."""
    charge = obj.get("charge")
    payment = _by(session, fee=obj.get("id"), charge=charge if isinstance(charge, str) else None)
    if payment is None:
        return OutcomeKind.UNKNOWN_BOOKING, None
    totals = {"fee_refunded_amount": int(obj.get("amount_refunded") or 0)}
    records.grow_split(session, payment, ids={"stripe_application_fee_id": obj.get("id")}, totals=totals, now=now)
    return OutcomeKind.FEE_RECORDED, repo.get(session, payment.booking_id)


_SNAPSHOT = (
    "stripe_charge_id",
    "stripe_transfer_id",
    "stripe_application_fee_id",
    "platform_fee_amount",
    "transfer_amount",
    "transfer_reversed_amount",
    "fee_refunded_amount",
    "refunded_amount",
)


def _snapshot(payment: Payment) -> tuple[Any, ...]:
    return tuple(getattr(payment, name) for name in _SNAPSHOT)


def _by(
    session: Session, *, charge: str | None, transfer: str | None = None, fee: str | None = None
) -> Payment | None:
    conditions = []
    if charge:
        conditions.append(Payment.stripe_charge_id == charge)
    if transfer:
        conditions.append(Payment.stripe_transfer_id == transfer)
    if fee:
        conditions.append(Payment.stripe_application_fee_id == fee)
    if not conditions:
        return None
    return session.scalars(sa.select(Payment).where(sa.or_(*conditions)).limit(1)).first()


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionEarning:
    booking_id: uuid.UUID
    starts_at: datetime
    subject: str
    status: int
    currency: str
    gross: int
    refunded: int
    fee: int
    net: int
    paid_out: bool  # a destination charge (False: the payment stayed on the platform)
    settled: bool  # Stripe's split is recorded (always True for a payment on the platform)
    student_name: str = ""  # the child taught
    transfer_id: str | None = None  # Stripe's transfer to the teacher, once made
    paid_at: datetime | None = None


@dataclass
class MonthTotal:
    month: str  # YYYY-MM of the sessions' start (UTC)
    currency: str
    sessions: int = 0
    gross: int = 0
    refunded: int = 0
    fee: int = 0
    net: int = 0


@dataclass
class Earnings:
    sessions: list[SessionEarning] = field(default_factory=list)
    months: list[MonthTotal] = field(default_factory=list)


def earning(booking: PS, *, student_name: str = "", credit_returned: bool = False) -> SessionEarning:
    """One paid booking's split (see the module's docstring; a lesson paid with a package's
    credit: `_credit_split`)."""
    payment = booking.payment
    assert payment is not None, "earnings are read for paid bookings"
    gross, refunded = booking.price_amount, payment.refunded_amount
    if payment.kind == PaymentKind.CREDIT.value:
        refunded, fee, net, settled = _credit_split(booking, payment, returned=credit_returned)
    elif payment.payout_destination:
        settled = payment.stripe_transfer_id is not None
        # No application fee at Stripe (a charge made without one): the teacher got it all.
        taken = (payment.platform_fee_amount or 0) if payment.stripe_application_fee_id else 0
        fee = taken - payment.fee_refunded_amount if settled else 0
        net = payment.transfer_amount - payment.transfer_reversed_amount - fee if settled else 0
    else:
        settled, net, fee = True, 0, gross - refunded
    return SessionEarning(
        booking.id, booking.starts_at, booking.subject, booking.status, booking.currency,
        gross, refunded, fee, net, bool(payment.payout_destination), settled,
        student_name, payment.stripe_transfer_id, booking.paid_at,
    )  # fmt: skip


def _credit_split(booking: PS, payment: Payment, *, returned: bool) -> tuple[int, int, int, bool]:
    """(refunded, fee, net, settled) of a lesson paid with a package's credit (issue #28): the
    teacher is paid per delivered lesson by a separate transfer of the price less the fee
    (`lesson_payouts`), so net = that transfer less its reversals and fee = the fee fixed with it.
    A credit given back counts as refunded; a lesson cancelled with its credit used up earned the
    platform the whole price (it was not delivered: nothing reaches the teacher); a lesson not
    completed yet, or whose transfer is not made yet, is not settled."""
    gross = booking.price_amount
    if returned:
        return gross, 0, 0, True
    if payment.stripe_transfer_id is not None:
        net = payment.transfer_amount - payment.transfer_reversed_amount
        return 0, gross - net, net, True
    if booking.status == Status.CANCELLED:
        return 0, gross, 0, True
    return 0, 0, 0, False


def _returned(session: Session, booking_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these bookings gave their credit back (a `return` entry of the ledger)."""
    if not booking_ids:
        return set()
    stmt = sa.select(CreditEntry.booking_id).where(
        CreditEntry.booking_id.in_(booking_ids), CreditEntry.kind == EntryKind.RETURN.value
    )
    return {b for b in session.scalars(stmt) if b is not None}


# A booking's own payment, for the reports' filters (the relationship's join, said once).
_OWN = sa.and_(Payment.booking_id == PS.id, Payment.state != "refused")


def _paid(start: datetime, end: datetime) -> sa.Select[PS]:
    return (
        sa.select(PS)
        .join(Payment, _OWN)
        .where(
            sa.or_(Payment.stripe_payment_intent_id.is_not(None), Payment.kind == PaymentKind.CREDIT.value),
            PS.starts_at >= start,
            PS.starts_at < end,
        )
    )


def for_teacher(session: Session, *, teacher_id: uuid.UUID, start: datetime, end: datetime) -> Earnings:
    """A teacher's paid sessions starting in [start, end), and totals per month and currency."""
    stmt = (
        _paid(start, end)
        .add_columns(Student.full_name)
        .outerjoin(Student, Student.id == PS.student_id)
        .where(PS.teacher_id == teacher_id)
        .order_by(PS.starts_at, PS.id)
    )
    out = Earnings()
    months: dict[tuple[str, str], MonthTotal] = {}
    rows = list(session.execute(stmt).tuples())
    returned = _returned(session, [booking.id for booking, _ in rows])
    for booking, student_name in rows:
        e = earning(booking, student_name=student_name or "", credit_returned=booking.id in returned)
        out.sessions.append(e)
        key = (e.starts_at.strftime("%Y-%m"), e.currency)
        total = months.setdefault(key, MonthTotal(*key))
        total.sessions += 1
        total.gross += e.gross
        total.refunded += e.refunded
        total.fee += e.fee
        total.net += e.net
    out.months = [months[k] for k in sorted(months)]
    return out


@dataclass
class TeacherPayouts:
    teacher_id: uuid.UUID
    teacher_name: str
    currency: str
    sessions: int = 0
    gross: int = 0
    refunded: int = 0
    platform_fees: int = 0
    transferred: int = 0  # what the teachers keep: the transfers less their reversals, less the fees
    unsettled: int = 0  # destination charges whose split is not recorded yet
    kept_on_platform: int = 0  # payments that stayed on the platform (teacher without payouts)


def platform_report(session: Session, *, start: datetime, end: datetime) -> list[TeacherPayouts]:
    """Per teacher and currency: the platform's fees and what was transferred, sessions in [start, end)."""
    stmt = _paid(start, end).order_by(PS.teacher_id, PS.starts_at)
    names = dict(session.execute(sa.select(User.id, User.full_name).where(User.role == Role.TEACHER)).tuples().all())
    report: dict[tuple[uuid.UUID, str], TeacherPayouts] = {}
    bookings = list(session.scalars(stmt))
    returned = _returned(session, [booking.id for booking in bookings])
    for booking in bookings:
        e = earning(booking, credit_returned=booking.id in returned)
        key = (booking.teacher_id, e.currency)
        row = report.setdefault(key, TeacherPayouts(booking.teacher_id, names.get(booking.teacher_id, "?"), e.currency))
        row.sessions += 1
        row.gross += e.gross
        row.refunded += e.refunded
        row.platform_fees += e.fee if e.paid_out else 0
        row.kept_on_platform += 0 if e.paid_out else e.fee
        row.transferred += e.net
        row.unsettled += 0 if e.settled else 1
    return sorted(report.values(), key=lambda r: (r.teacher_name, r.currency))


def missing_splits(session: Session, *, limit: int = 500) -> list[uuid.UUID]:
    """Paid destination charges whose transfer is not recorded (reconcile reads them again)."""
    stmt = (
        sa.select(Payment.booking_id)
        .where(Payment.state != "refused")
        .where(Payment.payout_destination.is_not(None), Payment.stripe_payment_intent_id.is_not(None))
        .where(Payment.stripe_transfer_id.is_(None))
        .limit(limit)
    )
    return list(session.scalars(stmt))


def refunded_destination_charges(session: Session, *, since: datetime, limit: int = 500) -> list[uuid.UUID]:
    """Destination charges with refunds, updated since `since` (reconcile checks their reversals)."""
    stmt = (
        sa.select(Payment.booking_id)
        .join(PS, PS.id == Payment.booking_id)
        .where(Payment.state != "refused")
        .where(Payment.payout_destination.is_not(None), Payment.stripe_payment_intent_id.is_not(None))
        .where(Payment.refunded_amount > 0)
        .where(sa.or_(PS.updated_at >= since, PS.created_at >= since, Payment.updated_at >= since))
        .limit(limit)
    )
    return list(session.scalars(stmt))


def charges_without_fee(session: Session, *, since: datetime, limit: int = 500) -> list[uuid.UUID]:
    """Destination charges paid out with a fee asked for and none recorded, updated since `since`
    (reconcile reads them again and reports them while they are recent)."""
    stmt = (
        sa.select(Payment.booking_id)
        .where(Payment.state != "refused")
        .where(Payment.payout_destination.is_not(None), Payment.stripe_transfer_id.is_not(None))
        .where(Payment.platform_fee_amount > 0, Payment.stripe_application_fee_id.is_(None))
        .where(Payment.updated_at >= since)
        .limit(limit)
    )
    return list(session.scalars(stmt))
