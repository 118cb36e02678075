"""A booking change's notices, written to the mail outbox in the change's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from tutorbook.bookings import repository as repo
from tutorbook.bookings.models import Booking
from tutorbook.notifications import service as notices


def notify(
    session: Session,
    booking: Booking,
    kinds: tuple[str, ...],
    *,
    now: datetime,
    payload: Mapping[str, object] | None = None,
    not_before: datetime | None = None,
    addresses: Mapping[uuid.UUID, str] | None = None,
) -> None:
    """Write the notices of a change in its transaction (the outbox): `kind.parent` goes to the
    parent, `kind.teacher` to the teacher; the version is the booking's history length.
    `addresses`: their email addresses by user id, when this request has read them already."""
    who = {"parent": booking.parent_id, "teacher": booking.teacher_id}
    notices.booking_notice(
        session,
        booking_id=booking.id,
        recipients={kind: who[kind.rsplit(".", 1)[1]] for kind in kinds},
        version=repo.version(session, booking.id),
        payload=payload,
        now=now,
        not_before=not_before,
        addresses=addresses,
    )
