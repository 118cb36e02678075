"""Two workers (separate engines, as two processes would have) racing the expire job over
1,000 stale Pending bookings on PostgreSQL: each booking is cancelled exactly once."""

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests import factories as f
from tutorbook import jobs
from tutorbook.bookings.models import Booking, StatusHistory
from tutorbook.clock import utc_now
from tutorbook.db import Database
from tutorbook.flows.services import build_services
from tutorbook.jobs import tasks

ROWS, WITH_CHECKOUT = 1000, 100


def insert_stale_bookings(db, *, parent: dict, teacher: dict) -> None:
    """ROWS Pending bookings past their checkout expiry, one hour apart (the exclusion constraint
    allows no overlap); the first WITH_CHECKOUT carry checkout ids Stripe has never heard of."""
    now = utc_now()
    base = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    bookings, history = [], []
    for i in range(ROWS):
        booking_id = uuid.uuid4()
        bookings.append(
            dict(
                id=booking_id,
                parent_id=uuid.UUID(parent["user"]["id"]),
                student_id=uuid.UUID(parent["students"][0]),
                teacher_id=uuid.UUID(teacher["user"]["id"]),
                subject="Mathematics",
                starts_at=base + timedelta(hours=i),
                ends_at=base + timedelta(hours=i, minutes=30),
                price_amount=3000,
                currency="usd",
                status=0,
                stripe_session_id=f"cs_test_race_{uuid.uuid4().hex}" if i < WITH_CHECKOUT else None,
                checkout_expires_at=now - timedelta(minutes=5),
                created_at=now - timedelta(minutes=40),
                updated_at=now - timedelta(minutes=40),
                refunded_amount=0,
                meeting_attempts=0,
            )
        )
        history.append(
            dict(
                session_id=booking_id,
                from_status=None,
                to_status=0,
                reason="booked",
                actor="test",
                created_at=now - timedelta(minutes=40),
            )
        )
    with db.session_scope() as s:
        s.execute(sa.insert(Booking), bookings)
        s.execute(sa.insert(StatusHistory), history)


@pytest.fixture
def postgresql_only(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("FOR UPDATE SKIP LOCKED and real concurrent writers: PostgreSQL only")
    return database_url


def test_two_workers_racing_over_1000_stale_rows_cancel_each_exactly_once(postgresql_only, api, c, monkeypatch):
    database_url = postgresql_only
    monkeypatch.setattr(tasks, "EXPIRE_BATCH", 100)  # ten batches, so both workers can take some
    insert_stale_bookings(api.state.db, parent=f.parent(c), teacher=f.teacher(c))
    workers = [build_services(api.state.settings, Database(database_url, pool_size=2)) for _ in range(2)]
    start, results, errors = threading.Barrier(2), [None, None], []

    def work(i):
        start.wait()
        try:
            results[i] = jobs.run("expire", workers[i], now=utc_now())
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for svc in workers:
        svc.db.dispose()
    assert errors == []

    with api.state.db.session_scope() as s:
        statuses = s.execute(sa.select(Booking.status, sa.func.count()).group_by(Booking.status)).all()
        per_booking = s.execute(
            sa.select(StatusHistory.session_id, sa.func.count())
            .where(StatusHistory.to_status == 3)
            .group_by(StatusHistory.session_id)
        ).all()
    assert statuses == [(3, ROWS)]
    assert len(per_booking) == ROWS and {n for _, n in per_booking} == {1}
    done = [i for r in results for i in r.items if i.outcome in ("checkout_failed", "checkout_expired")]
    assert len(done) == ROWS  # the winners' items add up; everything else was "skipped"
    assert all(len([i for i in r.items if i.outcome != "skipped"]) > 0 for r in results), "both took a share"
