"""The ledger's property: for any sequence of purchases, draws, returns, expiries, refunds and
operator adjustments, no lot's balance (hence no family's) goes below zero, every balance equals
the sum of its entries, and it matches a plain model of the wallet. On both databases."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tutorbook.accounts.models import Student, User
from tutorbook.bookings.models import Booking
from tutorbook.credits import ledger, purchases
from tutorbook.credits.errors import NoCredit
from tutorbook.credits.models import CreditEntry, CreditLot, CreditPackage, EntryKind
from tutorbook.errors import Conflict
from tutorbook.teachers.models import TeacherProfile

T0 = datetime(2030, 1, 6, 9, 0, tzinfo=UTC)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(1, 4), st.integers(30, 60)),
        st.tuples(st.just("draw"), st.integers(0, 0), st.integers(0, 0)),
        st.tuples(st.just("return"), st.integers(0, 20), st.integers(0, 0)),
        st.tuples(st.just("wait"), st.integers(0, 40), st.integers(0, 0)),
        st.tuples(st.just("refund"), st.integers(0, 10), st.integers(0, 0)),
        st.tuples(st.just("grant"), st.integers(1, 3), st.integers(0, 0)),
        st.tuples(st.just("remove"), st.integers(1, 3), st.integers(0, 0)),
    ),
    max_size=25,
)


def _user(s, role: str) -> User:
    user = User(
        id=uuid.uuid4(),
        email=f"{uuid.uuid4().hex}@x.test",
        password_hash="x",
        full_name=role,
        role=role,
        time_zone="UTC",
        created_at=T0,
    )
    s.add(user)
    s.flush()
    return user


def _world(db):
    with db.session_scope() as s:
        parent, teacher = _user(s, "Parent"), _user(s, "Teacher")
        s.add(TeacherProfile(user_id=teacher.id, hourly_rate=6000, currency="usd", time_zone="UTC"))
        student = Student(id=uuid.uuid4(), parent_id=parent.id, full_name="Kid", created_at=T0)
        s.add(student)
        s.flush()
        package = CreditPackage(
            id=uuid.uuid4(),
            teacher_id=teacher.id,
            lessons=3,
            duration_minutes=60,
            price=15000,
            currency="usd",
            valid_days=30,
            created_at=T0,
        )
        s.add(package)
        return parent.id, teacher.id, student.id, package.id


_SLOTS = itertools.count()


def _booking(s, parent_id, teacher_id, student_id, now) -> uuid.UUID:
    """A confirmed booking of its own slot (no two overlap: PostgreSQL's exclusion constraint)."""
    start = now + timedelta(days=1, hours=2 * next(_SLOTS))
    b = Booking(
        id=uuid.uuid4(),
        parent_id=parent_id,
        student_id=student_id,
        teacher_id=teacher_id,
        subject="Maths",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        price_amount=0,
        currency="usd",
        status=1,
        created_at=now,
        updated_at=now,
    )
    s.add(b)
    s.flush()
    return b.id


def _check(db, parent_id, model: dict[uuid.UUID, int], now) -> None:
    with db.session_scope() as s:
        lots = list(s.scalars(sa.select(CreditLot).where(CreditLot.parent_id == parent_id)))
        balances = ledger.lot_balances(s, [lot.id for lot in lots])
        assert all(b >= 0 for b in balances.values()), balances
        assert balances == {lot.id: model.get(lot.id, 0) for lot in lots}
        entries = list(s.scalars(sa.select(CreditEntry.lessons).where(CreditEntry.parent_id == parent_id)))
        assert ledger.total(s, parent_id=parent_id) == sum(entries) == sum(model.values())
        usable = sum(b.lessons for b in ledger.wallet(s, parent_id=parent_id, now=now))
        assert usable == sum(model[lot.id] for lot in lots if lot.expires_at > now)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_no_balance_goes_below_zero_and_every_balance_is_the_sum_of_its_entries(db, steps):
    parent_id, teacher_id, student_id, package_id = _world(db)
    now = T0
    model: dict[uuid.UUID, int] = {}  # lot -> credits left, by a plain reading of the rules
    expiry: dict[uuid.UUID, datetime] = {}
    drawn: list[tuple[uuid.UUID, uuid.UUID]] = []  # (booking, lot)
    bought: list[uuid.UUID] = []
    returned: set[uuid.UUID] = set()
    for op, a, b in steps:
        if op == "buy":
            with db.session_scope() as s:
                p = purchases.open_purchase(
                    s, parent_id=parent_id, package_id=package_id, checkout_expires_at=now + timedelta(hours=1), now=now
                ).purchase
                p.lessons, p.valid_days = a, b
                s.flush()
                assert (
                    purchases.settle_paid(
                        s,
                        purchase=p,
                        checkout_id=f"cs_{uuid.uuid4().hex}",
                        payment_intent=f"pi_{uuid.uuid4().hex}",
                        amount_total=15000,
                        currency="usd",
                        actor="test",
                        now=now,
                    )
                    == "paid"
                )
                lot = ledger.lot_of_purchase(s, p.id)
                model[lot.id], expiry[lot.id] = a, lot.expires_at
                bought.append(p.id)
        elif op == "draw":
            usable = sorted((lot for lot, n in model.items() if n > 0 and expiry[lot] > now), key=lambda x: expiry[x])
            try:
                with db.session_scope() as s:
                    booking_id = _booking(s, parent_id, teacher_id, student_id, now)
                    entry = ledger.draw(
                        s,
                        parent_id=parent_id,
                        teacher_id=teacher_id,
                        duration_minutes=60,
                        booking_id=booking_id,
                        actor="test",
                        now=now,
                    )
                    lot_id = entry.lot_id
            except NoCredit:
                assert not usable
            else:
                assert usable and expiry[lot_id] == expiry[usable[0]]
                model[lot_id] -= 1
                drawn.append((booking_id, lot_id))
        elif op == "return" and drawn:
            booking_id, lot_id = drawn[a % len(drawn)]
            with db.session_scope() as s:
                entry = ledger.give_back(s, booking_id=booking_id, actor="test", now=now)
            assert (entry is None) == (booking_id in returned)
            if entry is not None:
                model[lot_id] += 1
                returned.add(booking_id)
        elif op == "wait":
            now += timedelta(days=a)
            with db.session_scope() as s:
                for lot_id in ledger.due_to_expire(s, now=now):
                    ledger.expire(s, lot_id=lot_id, actor="job:test", now=now)
            for lot_id in model:
                if expiry[lot_id] <= now:
                    model[lot_id] = min(model[lot_id], 0)
        elif op == "refund" and bought:
            purchase_id = bought[a % len(bought)]
            try:
                with db.session_scope() as s:
                    entry = purchases.refund_unused(s, purchase_id=purchase_id, user_id=None, actor="test", now=now)
                    lot_id, taken = entry.lot_id, -entry.lessons
            except Conflict:
                with db.session_scope() as s:
                    lot = ledger.lot_of_purchase(s, purchase_id)
                    assert expiry[lot.id] <= now or model[lot.id] <= 0
            else:
                assert taken == model[lot_id] > 0
                model[lot_id] = 0
        elif op == "grant":
            with db.session_scope() as s:
                lot = ledger.add_lot(
                    s,
                    parent_id=parent_id,
                    teacher_id=teacher_id,
                    duration_minutes=60,
                    lessons=a,
                    unit_amount=0,
                    currency="usd",
                    expires_at=now + timedelta(days=30),
                    kind=EntryKind.ADJUST,
                    actor="admin:test",
                    now=now,
                    amount=0,
                    reason="goodwill",
                )
                model[lot.id], expiry[lot.id] = a, lot.expires_at
        elif op == "remove":
            usable = sum(n for lot, n in model.items() if expiry[lot] > now)
            try:
                with db.session_scope() as s:
                    taken = ledger.remove(
                        s,
                        parent_id=parent_id,
                        teacher_id=teacher_id,
                        duration_minutes=60,
                        lessons=a,
                        actor="admin:test",
                        reason="mistake",
                        now=now,
                    )
                    moves = [(e.lot_id, e.lessons) for e in taken]
            except NoCredit:
                assert usable < a
            else:
                for lot_id, n in moves:
                    model[lot_id] += n
        _check(db, parent_id, model, now)
    # Every lot at the end: in == out + left, whatever happened.
    with db.session_scope() as s:
        kinds = {k for (k,) in s.execute(sa.select(CreditEntry.kind).where(CreditEntry.parent_id == parent_id))}
        assert kinds <= {k.value for k in EntryKind}


def test_a_second_draw_for_one_booking_is_refused_by_the_database(db):
    parent_id, teacher_id, student_id, _ = _world(db)
    with db.session_scope() as s:
        ledger.add_lot(
            s,
            parent_id=parent_id,
            teacher_id=teacher_id,
            duration_minutes=60,
            lessons=2,
            unit_amount=0,
            currency="usd",
            expires_at=T0 + timedelta(days=30),
            kind=EntryKind.ADJUST,
            actor="admin:test",
            now=T0,
            amount=0,
        )
        booking_id = _booking(s, parent_id, teacher_id, student_id, T0)
    kwargs = dict(parent_id=parent_id, teacher_id=teacher_id, duration_minutes=60, booking_id=booking_id, actor="t")
    with db.session_scope() as s:
        ledger.draw(s, now=T0, **kwargs)
    with pytest.raises(sa.exc.IntegrityError):
        with db.session_scope() as s:
            ledger.draw(s, now=T0, **kwargs)
    with db.session_scope() as s:
        assert ledger.available(s, parent_id=parent_id, teacher_id=teacher_id, duration_minutes=60, now=T0) == 1
