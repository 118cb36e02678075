"""Two bookings racing for the family's last credit: exactly one wins, on both databases, at
the ledger (the second waits for the first's wallet lock, then finds nothing) and end to end
through the API (many parallel credit bookings of distinct slots, one credit)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import sqlalchemy as sa

from tests import factories as f
from tests.credits import helpers as h
from tests.credits.test_ledger_properties import T0, _booking, _world
from tutorbook.credits import ledger
from tutorbook.credits.errors import NoCredit
from tutorbook.credits.models import CreditEntry, EntryKind


def test_the_second_of_two_draws_for_the_last_credit_waits_and_finds_none(db):
    parent_id, teacher_id, student_id, _ = _world(db)
    with db.session_scope() as s:
        ledger.add_lot(
            s,
            parent_id=parent_id,
            teacher_id=teacher_id,
            duration_minutes=60,
            lessons=1,
            unit_amount=0,
            currency="usd",
            expires_at=T0 + timedelta(days=30),
            kind=EntryKind.ADJUST,
            actor="admin:test",
            now=T0,
            amount=0,
        )
        bookings = [_booking(s, parent_id, teacher_id, student_id, T0) for _ in range(2)]
    drawn, results = threading.Event(), {}

    def first():
        with db.session_scope() as s:
            ledger.draw(
                s,
                parent_id=parent_id,
                teacher_id=teacher_id,
                duration_minutes=60,
                booking_id=bookings[0],
                actor="a",
                now=T0,
            )
            drawn.set()
            time.sleep(0.5)  # hold the wallet while the other tries
        results["first"] = "won"

    def second():
        drawn.wait(5)
        try:
            with db.session_scope() as s:
                ledger.draw(
                    s,
                    parent_id=parent_id,
                    teacher_id=teacher_id,
                    duration_minutes=60,
                    booking_id=bookings[1],
                    actor="b",
                    now=T0,
                )
            results["second"] = "won"
        except NoCredit:
            results["second"] = "no_credit"

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"first": "won", "second": "no_credit"}
    with db.session_scope() as s:
        draws = s.scalar(
            sa.select(sa.func.count()).where(CreditEntry.kind == "draw", CreditEntry.parent_id == parent_id)
        )
        assert draws == 1
        assert ledger.total(s, parent_id=parent_id) == 0


def test_parallel_credit_bookings_of_the_last_credit_one_wins_through_the_api(api, c):
    t, p = f.teacher(c), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=1, price=6000))
    starts = [f.slot(days=3, hour=hour) for hour in range(8, 14)]
    with ThreadPoolExecutor(len(starts)) as pool:
        answers = list(pool.map(lambda s: h.book_with_credit(p, t, starts_at=s), starts))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (len(starts) - 1), [r.text for r in answers]
    assert h.credits(p)["total"] == 0
    assert [e["kind"] for e in h.ledger(p)["items"]] == ["draw", "purchase"]
