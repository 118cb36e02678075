"""The one set of ways to look up a booking. Everything above the repository uses these:

- `must_get(session, booking_id=)`: by id, for a caller already allowed to act on it (an admin,
  a flow re-reading what it just changed); 404 `BookingNotFound` when there is none.
- `get_for(session, user=, booking_id=)`: by id, one `user` may see (its parent, its teacher or
  an admin); 404, then 403.
- `own_booking(session, parent=, checkout_id= | checkout= | booking_id=)`: the parent's
  booking, by its recorded checkout id, else the booking a `checkout` is or names (its recorded
  id, else its metadata), else by id; 404, then 403.
- `own_booking_or_none(session, parent=, checkout_id=)`: the parent's booking whose
  recorded checkout this is, None when no booking has it; 403 when not theirs.
- `by_checkout(session, checkout, named=False, records=True)`: the booking this checkout is the recorded
  checkout of, None otherwise; with `named=True`, else the booking its metadata names, whatever
  its checkout (for the fulfilment, which refuses a payment through another checkout).

Below them, `repository.get` (by id or None), `repository.by_checkout_id` (by recorded
checkout id or None) and the batch reads `queries.by_ids` / `by_checkout_ids` are the
primitives these are made of, for the domain's own use cases and the jobs."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import CHECKOUT_TEMPLATE, Checkout
from tutorbook.bookings.errors import BookingNotFound
from tutorbook.bookings.models import Booking
from tutorbook.errors import Forbidden
from tutorbook.identity import AuthUser, Role


def must_get(session: Session, *, booking_id: uuid.UUID) -> Booking:
    """The booking (BookingNotFound otherwise), for callers that hold its id already."""
    booking = repo.get(session, booking_id)
    if booking is None:
        raise BookingNotFound()
    return booking


def get_for(session: Session, *, user: AuthUser, booking_id: uuid.UUID) -> Booking:
    """A booking the caller may see: owner parent, its teacher, or an admin (403 otherwise)."""
    booking = must_get(session, booking_id=booking_id)
    if not may_see(user, booking):
        raise Forbidden("This booking is not yours")
    return booking


def may_see(user: AuthUser, booking: Booking) -> bool:
    """Whether `user` is the booking's parent, its teacher or an admin."""
    return (
        user.role == Role.ADMIN
        or (user.role == Role.PARENT and booking.parent_id == user.id)
        or (user.role == Role.TEACHER and booking.teacher_id == user.id)
    )


def by_checkout(session: Session, checkout: Checkout, *, named: bool = False, records: bool = True) -> Booking | None:
    """The booking whose recorded checkout this is; with `named`, else the booking the checkout's
    metadata names (whatever its checkout). `records=False`: read with its payment only (its
    meeting link and terms are read only if used), for a caller that does not show it."""
    booking = repo.by_checkout_id(session, checkout.id, records=records)
    if booking is not None or not named or not checkout.booking_ref:
        return booking
    try:
        return repo.get(session, uuid.UUID(checkout.booking_ref))
    except ValueError:
        return None


def own_booking(
    session: Session,
    *,
    parent: AuthUser,
    checkout_id: str | None = None,
    booking_id: uuid.UUID | None = None,
    checkout: Checkout | None = None,
) -> Booking:
    """The parent's booking: by its recorded checkout id, else the one `checkout` is or names,
    else by id (404, then 403 if not theirs)."""
    booking = None
    if checkout_id and checkout_id != CHECKOUT_TEMPLATE:
        booking = repo.by_checkout_id(session, checkout_id)
    elif checkout is not None:
        booking = by_checkout(session, checkout, named=True)
    elif booking_id is not None:
        booking = repo.get(session, booking_id)
    if booking is None:
        raise BookingNotFound()
    if booking.parent_id != parent.id:
        raise Forbidden("This booking is not yours")
    return booking


def own_booking_or_none(session: Session, *, parent: AuthUser, checkout_id: str) -> Booking | None:
    """The parent's booking with this checkout; None when no booking has it (403 if not theirs)."""
    booking = repo.by_checkout_id(session, checkout_id)
    if booking is not None and booking.parent_id != parent.id:
        raise Forbidden("This booking is not yours")
    return booking
