"""A booking change's notices, written to the mail outbox in the change's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

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


def rows(
    booking: Booking, kinds: tuple[str, ...], *, version: int, now: datetime, addresses: Mapping[uuid.UUID, str]
) -> list[dict[str, Any]] | None:
    """The rows `notify` would write now (no payload, due now), for a caller that writes them in a
    statement of its own with the workers' wake-up (a credit booking's one statement, before its
    history rows are written: `version` is what they will make it); None when `notify` would read
    the users (an address not known)."""
    who = {"parent": booking.parent_id, "teacher": booking.teacher_id}
    return notices.known_rows(
        booking_id=booking.id,
        recipients={kind: who[kind.rsplit(".", 1)[1]] for kind in kinds},
        version=version,
        now=now,
        addresses=addresses,
    )
