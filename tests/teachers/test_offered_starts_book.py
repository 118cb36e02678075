"""Property (issue #13): for random hours, time off, bookings and lengths, every start the
availability offers books successfully, and none overlaps a holding booking or time off.

Runs the real use cases (`bookings.reporting.bookable_starts` and `reserve`) on each database;
each offered start is booked inside a savepoint that is rolled back, so one example checks all
of its starts against the same state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_settings, wipe
from tutorbook.accounts.models import Student, User
from tutorbook.bookings import reporting, reserving
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.models import Booking
from tutorbook.bookings.schemas import BookIn
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.identity import AuthUser, Role
from tutorbook.teachers import service as teachers
from tutorbook.teachers import slots
from tutorbook.teachers.models import TeacherProfile

NOW = datetime(2031, 3, 28, 7, 13, tzinfo=UTC)  # a Friday, just before Europe's DST change
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
HOLDING = (Status.PENDING.value, Status.CONFIRMED.value)

quarter = st.integers(min_value=0, max_value=95).map(lambda q: q * 15)
windows = st.lists(
    st.tuples(st.integers(0, 6), quarter, st.integers(1, 40).map(lambda q: q * 15)).map(
        lambda w: slots.Window(w[0], w[1], min(1440, w[1] + w[2]))
    ),
    min_size=2,
    max_size=8,
)
offsets = st.integers(min_value=0, max_value=4 * 24 * 12).map(lambda n: timedelta(minutes=5 * n))
time_off = st.lists(st.tuples(offsets, st.integers(1, 48).map(lambda q: timedelta(minutes=15 * q))), max_size=3)
booked = st.lists(st.tuples(offsets, st.sampled_from(ALLOWED_DURATIONS), st.sampled_from([0, 1, 3])), max_size=8)


def _world(session, *, zone, hours, away, held):
    teacher, parent = User(id=uuid.uuid4()), User(id=uuid.uuid4())
    for user, role in ((teacher, Role.TEACHER), (parent, Role.PARENT)):
        user.email, user.password_hash, user.full_name = f"{user.id}@example.com", "x", role.value
        user.role, user.time_zone, user.created_at = role.value, zone, NOW
        session.add(user)
    session.flush()
    session.add(
        TeacherProfile(user_id=teacher.id, subjects=["Maths"], hourly_rate=6000, currency="usd", time_zone=zone, bio="")
    )
    student = Student(id=uuid.uuid4(), parent_id=parent.id, full_name="Kid", created_at=NOW)
    session.add(student)
    session.flush()
    teachers.set_windows(session, teacher_id=teacher.id, new=hours)
    for offset, length in away:
        start = NOW + offset
        teachers.add_time_off(session, teacher_id=teacher.id, starts_at=start, ends_at=start + length, note="", now=NOW)
    holding: list[tuple[datetime, datetime]] = []
    for offset, minutes, status in held:
        start, end = NOW + offset, NOW + offset + timedelta(minutes=minutes)
        if status in HOLDING:
            if any(_overlaps(start, end, s, e) for s, e in holding):
                continue  # two holding bookings never overlap (PostgreSQL's constraint enforces it)
            holding.append((start, end))
        session.add(
            Booking(
                parent_id=parent.id,
                student_id=student.id,
                teacher_id=teacher.id,
                subject="Maths",
                starts_at=start,
                ends_at=end,
                price_amount=6000,
                currency="usd",
                status=status,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    session.flush()
    return teacher, parent, student


def _overlaps(a_start, a_end, b_start, b_end) -> bool:
    return a_start < b_end and b_start < a_end


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    zone=st.sampled_from(ZONES),
    hours=windows,
    away=time_off,
    held=booked,
    minutes=st.sampled_from(ALLOWED_DURATIONS),
)
def test_every_offered_start_books_and_none_overlaps(shared_db, tmp_path, zone, hours, away, held, minutes):
    wipe(shared_db)
    config = make_settings(shared_db.url, tmp_path)
    with shared_db.session_scope() as session:
        teacher, parent, student = _world(session, zone=zone, hours=hours, away=away, held=held)
        start, end = NOW, NOW + timedelta(days=4)
        offered = reporting.bookable_starts(
            session, teacher_id=teacher.id, start=start, end=end, minutes=minutes, now=NOW
        )
        busy = [(b.starts_at, b.ends_at) for b in session.query(Booking).all() if b.status in HOLDING]
        busy += teachers.time_off_intervals(session, teacher.id, start=start, end=end + timedelta(days=1))
        who = AuthUser(id=parent.id, role=Role.PARENT.value, email=parent.email, full_name="P", time_zone=zone)
        length = timedelta(minutes=minutes)
        for t in offered:
            assert start < t < end
            assert not any(_overlaps(t, t + length, s, e) for s, e in busy), (t, busy)
            body = BookIn(
                teacher_id=teacher.id, student_id=student.id, subject="Maths", starts_at=t, duration_minutes=minutes
            )
            savepoint = session.begin_nested()
            reservation = reserving.reserve(session, parent=who, body=body, settings=config, now=NOW)
            assert reservation.booking.starts_at == t and not reservation.reused
            savepoint.rollback()
