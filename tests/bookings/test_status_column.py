"""The booking's status column: a Status in Python, the plain SMALLINT 0-3 in the database and
the integer 0-3 in JSON; a compare-and-set needs the status it expects."""

import uuid

import pytest
import sqlalchemy as sa

from tests.jobs.helpers import booked, confirmed, row
from tutorbook.bookings import lifecycle
from tutorbook.bookings import repository as repo
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking
from tutorbook.clock import utc_now


def test_a_booking_reads_back_with_a_status_and_is_stored_and_sent_as_the_number(api, c):
    x = booked(c)
    assert x["b"]["status"] == 0 and x["b"]["statusName"] == "Pending"
    pending = row(api, x["b"]["id"])
    assert pending is not None and pending.status is Status.PENDING

    y = confirmed(c)
    assert row(api, y["b"]["id"]).status is Status.CONFIRMED
    with api.state.db.engine.connect() as conn:
        query = sa.text("SELECT status FROM private_sessions WHERE id = :id")
        query = query.bindparams(sa.bindparam("id", type_=sa.Uuid))
        raw = conn.execute(query, {"id": uuid.UUID(y["b"]["id"])}).scalar_one()
    assert type(raw) is int and raw == 1


def test_the_compare_and_set_sets_the_status_as_a_status(api, c):
    booking_id = uuid.UUID(booked(c)["b"]["id"])
    with api.state.db.session_scope() as s:
        booking = s.get_one(Booking, booking_id)
        change = lifecycle.cancel(Status.PENDING, reason=lifecycle.Reason.CHECKOUT_EXPIRED, now=utc_now())
        assert repo.apply(s, booking, change, actor="test")
        assert booking.status is Status.CANCELLED


def test_the_compare_and_set_refuses_a_change_that_creates_a_booking(api, c):
    booking_id = uuid.UUID(booked(c)["b"]["id"])
    with api.state.db.session_scope() as s:
        booking = s.get_one(Booking, booking_id)
        with pytest.raises(ValueError, match="insert"):
            repo.apply(s, booking, lifecycle.book(now=utc_now()), actor="test")
    assert row(api, booking_id).status is Status.PENDING
