"""The credit wallet's money (credits/ledger.py, credits/service.py), without HTTP: what a family
holds per teacher and length, which credit a booking takes and gets back, an operator's grant
and removal, expiry and its warnings, and the ledger's pages. Written from the rules (issue #28):
a balance is the sum of its entries; a credit is usable while `now < expires_at`; a draw and a
removal take from the lot expiring first; the 30-day warning only for lots valid longer than 30
days, each warning once. Every clock is set by the test (T0, or the booking's own times)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.service.world import World, hours_from_now, refused
from tutorbook.bookings.schemas import BookIn
from tutorbook.credits import ledger
from tutorbook.credits import service as wallet_service
from tutorbook.credits.errors import NoCredit
from tutorbook.credits.schemas import AdjustIn, EntryOut
from tutorbook.flows import booking as flows
from tutorbook.flows import packages as package_flows
from tutorbook.identity import AuthUser
from tutorbook.notifications.models import Notification

pytestmark = pytest.mark.service

T0 = datetime(2030, 1, 6, 9, 0, tzinfo=UTC)
CONFIRMED, CANCELLED = 1, 3
ADMIN = "admin:operator"


def adjust(
    world: World,
    parent: tuple[AuthUser, uuid.UUID],
    teacher: AuthUser,
    lessons: int,
    *,
    at: datetime,
    valid_days: int = 365,
    minutes: int = 60,
    reason: str = "goodwill",
) -> list[EntryOut]:
    """An operator grants (+) or removes (-) credits at `at`."""
    body = AdjustIn(
        teacher_id=teacher.id, duration_minutes=minutes, lessons=lessons, reason=reason, valid_days=valid_days
    )
    return world.svc.tx_sync(wallet_service.adjust, actor=ADMIN, parent_id=parent[0].id, body=body, now=at)


def balances(world: World, parent: tuple[AuthUser, uuid.UUID], *, at: datetime) -> list[tuple[object, ...]]:
    """The family's wallet as the API shows it at `at`: (teacher, minutes, lessons, earliest expiry)
    each, then the total."""
    out = world.svc.tx_sync(wallet_service.credits_of, parent_id=parent[0].id, now=at)
    rows: list[tuple[object, ...]] = [
        (b.teacher_id, b.duration_minutes, b.lessons, b.earliest_expiry) for b in out.balances
    ]
    return [*rows, ("total", out.total)]


def entries(world: World, parent: tuple[AuthUser, uuid.UUID]) -> list[tuple[str, int, uuid.UUID]]:
    """The family's ledger, oldest first: (kind, lessons, lot) each."""
    page = world.svc.tx_sync(wallet_service.ledger_page, parent_id=parent[0].id, page_size=100, after=None)
    return [(e.kind, e.lessons, e.lot_id) for e in reversed(page.items)]


def test_the_wallet_sums_each_teacher_and_length_and_a_credit_is_usable_until_its_expiry_instant(world: World):
    t, other, p = world.teacher(), world.teacher(), world.parent()
    adjust(world, p, t, 2, at=T0, valid_days=10)
    adjust(world, p, t, 3, at=T0, valid_days=30)
    adjust(world, p, t, 1, at=T0, valid_days=20, minutes=30)
    adjust(world, p, other, 1, at=T0, valid_days=40)
    day = timedelta(days=1)
    before = [(t.id, 60, 5, T0 + 10 * day), (t.id, 30, 1, T0 + 20 * day), (other.id, 60, 1, T0 + 40 * day)]
    assert balances(world, p, at=T0) == [*before, ("total", 7)]
    assert balances(world, p, at=T0 + 10 * day - timedelta(microseconds=1)) == [*before, ("total", 7)]
    after = [(t.id, 30, 1, T0 + 20 * day), (t.id, 60, 3, T0 + 30 * day), (other.id, 60, 1, T0 + 40 * day)]
    assert balances(world, p, at=T0 + 10 * day) == [*after, ("total", 5)]  # the 10-day lot is gone at its instant
    names = world.svc.tx_sync(wallet_service.credits_of, parent_id=p[0].id, now=T0).balances
    assert [b.teacher_name for b in names] == [t.full_name, t.full_name, other.full_name]
    assert {b.currency for b in names} == {"usd"}
    available = world.svc.tx_sync(
        ledger.available, parent_id=p[0].id, teacher_id=t.id, duration_minutes=60, now=T0 + 10 * day
    )
    assert available == 3
    shorter = world.svc.tx_sync(ledger.available, parent_id=p[0].id, teacher_id=t.id, duration_minutes=30, now=T0)
    assert shorter == 1  # a 60-minute credit books no 30-minute lesson, nor the reverse


def test_a_grant_is_a_lot_of_its_own_and_a_removal_takes_from_the_lots_expiring_first(world: World):
    t, p = world.teacher(), world.parent()
    [granted] = adjust(world, p, t, 2, at=T0, valid_days=10, reason="  a   make-good\tfor a  no-show ")
    assert (granted.kind, granted.lessons, granted.amount, granted.actor) == ("adjust", 2, 0, ADMIN)
    assert granted.reason == "a make-good for a no-show"  # one line, spaces collapsed
    [later_lot] = adjust(world, p, t, 3, at=T0, valid_days=30, reason="y" * 500)  # the longest reason
    assert later_lot.lot_id != granted.lot_id
    taken = adjust(world, p, t, -3, at=T0 + timedelta(days=1), reason="booked by mistake")
    assert [(e.kind, e.lessons, e.lot_id) for e in taken] == [
        ("adjust", -2, granted.lot_id),  # the lot expiring first, emptied
        ("adjust", -1, later_lot.lot_id),
    ]
    assert balances(world, p, at=T0 + timedelta(days=1)) == [(t.id, 60, 2, T0 + timedelta(days=30)), ("total", 2)]
    with refused(409) as caught:
        adjust(world, p, t, -3, at=T0 + timedelta(days=1))
    assert str(caught[0]) == "The family holds only 2 such credits"
    adjust(world, p, t, -2, at=T0 + timedelta(days=1))  # exactly what is held
    assert balances(world, p, at=T0 + timedelta(days=1)) == [("total", 0)]
    assert [k for k, _, _ in entries(world, p)] == ["adjust"] * 5


def test_an_expired_lot_counts_for_no_removal(world: World):
    t, p = world.teacher(), world.parent()
    adjust(world, p, t, 2, at=T0, valid_days=10)
    [kept] = adjust(world, p, t, 1, at=T0, valid_days=30)
    with refused(409) as caught:
        adjust(world, p, t, -2, at=T0 + timedelta(days=10))
    assert str(caught[0]) == "The family holds only 1 such credits"
    assert [(e.lessons, e.lot_id) for e in adjust(world, p, t, -1, at=T0 + timedelta(days=10))] == [(-1, kept.lot_id)]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"lessons": 0}, 422),  # neither a grant nor a removal
        ({"reason": "   "}, 422),
        ({"reason": "x" * 501}, 422),  # 500 characters at most (test_a_grant_is_a_lot_of_its_own: 500 are)
        ({"teacher": "parent"}, 404),  # credits are of a teacher
        ({"teacher": "parent", "lessons": -1}, 404),  # a removal too (not "no credit")
        ({"parent": "teacher"}, 404),  # and for a family
        ({"lessons": -1}, 409),  # nothing to remove
    ],
)
def test_an_adjustment_that_cannot_be_made_is_refused_and_writes_nothing(world: World, change, status):
    t, p = world.teacher(), world.parent()
    teacher = p[0] if change.get("teacher") == "parent" else t
    parent = (t, p[1]) if change.get("parent") == "teacher" else p
    body = AdjustIn.model_construct(
        teacher_id=teacher.id,
        duration_minutes=60,
        lessons=change.get("lessons", 1),
        reason=change.get("reason", "goodwill"),
        valid_days=365,
    )
    with refused(status):
        world.svc.tx_sync(wallet_service.adjust, actor=ADMIN, parent_id=parent[0].id, body=body, now=T0)
    assert entries(world, p) == [] and balances(world, p, at=T0) == [("total", 0)]


def test_the_expiry_job_takes_what_is_left_of_a_lot_at_its_instant_once(world: World):
    t, p = world.teacher(), world.parent()
    [lot] = adjust(world, p, t, 3, at=T0, valid_days=10)
    [empty] = adjust(world, p, t, 1, at=T0, valid_days=5)
    taken = adjust(world, p, t, -2, at=T0)  # `empty` first (it expires first), then one of `lot`
    assert [(e.lessons, e.lot_id) for e in taken] == [(-1, empty.lot_id), (-1, lot.lot_id)]
    end = T0 + timedelta(days=10)

    def expired(at: datetime) -> list[str | None]:
        return [i.subject for i in world.job("credits", at=at).items if i.outcome in ("expired", "skipped")]

    assert expired(T0 + timedelta(days=5)) == []  # `empty` holds nothing to expire
    assert expired(end - timedelta(microseconds=1)) == []
    assert expired(end) == [f"lot:{lot.lot_id}"]
    assert [(k, n, x) for k, n, x in entries(world, p) if k == "expire"] == [("expire", -2, lot.lot_id)]
    assert expired(end + timedelta(days=1)) == []  # nothing left to take
    assert world.svc.tx_sync(lambda s: ledger.total(s, parent_id=p[0].id)) == 0


def test_expiry_warnings_go_at_30_and_7_days_once_each_and_not_for_a_lot_valid_30_days(world: World):
    t, p = world.teacher(), world.parent()
    [long] = adjust(world, p, t, 2, at=T0, valid_days=60)
    [short] = adjust(world, p, t, 1, at=T0, valid_days=30)
    [spent] = adjust(world, p, t, 1, at=T0, valid_days=60, minutes=30)
    adjust(world, p, t, -1, at=T0, minutes=30)  # nothing left in it: never warned
    day = timedelta(days=1)

    def warned(at: datetime) -> list[tuple[str, str | None]]:
        items = world.job("credits", at=at).items
        return sorted((i.outcome, i.subject) for i in items if i.outcome != "expired")  # a skipped warning too

    adjust(world, p, t, 1, at=T0, valid_days=20, minutes=45)  # ends inside 30 days from the start
    tick = timedelta(microseconds=1)
    assert warned(T0) == []  # no 30-day warning for a lot valid 30 days or less, the moment it is made
    assert warned(T0 + 23 * day - tick) == []  # nor the 30-day warning for `short`: valid only 30 days
    assert warned(T0 + 23 * day) == [("warned_7", f"lot:{short.lot_id}")]
    assert warned(T0 + 30 * day - tick) == []
    assert warned(T0 + 30 * day) == [("warned_30", f"lot:{long.lot_id}")]
    assert warned(T0 + 30 * day + timedelta(hours=1)) == []  # once: not even listed again
    assert warned(T0 + 53 * day - tick) == []
    assert warned(T0 + 53 * day) == [("warned_7", f"lot:{long.lot_id}")]
    assert warned(T0 + 54 * day) == []
    assert spent.lot_id not in {s for _, s in warned(T0 + 59 * day)}


def test_a_lot_first_warned_at_its_7_day_mark_is_never_warned_at_30_days_after(world: World):
    """The 7-day warning marks the 30-day one too: a lot the job first reaches inside its last 7
    days (the job down at its 30-day mark) gets the 7-day warning alone, and no 30-day warning
    follows it, saying less, later."""
    t, p = world.teacher(), world.parent()
    [lot] = adjust(world, p, t, 2, at=T0, valid_days=60)
    at = T0 + timedelta(days=54)  # 6 days left; no run at the 30-day mark
    [item] = world.svc.tx_sync(ledger.warnings_due, now=at, days=7)
    assert world.svc.tx_sync(wallet_service.warn_one, item=item, days=7, now=at) == "warned_7"
    for later in (at, at + timedelta(hours=1)):
        assert world.svc.tx_sync(ledger.warnings_due, now=later, days=30) == []
        assert world.svc.tx_sync(ledger.warnings_due, now=later, days=7) == []
    assert f"lot:{lot.lot_id}" not in {i.subject for i in world.job("credits", at=at + timedelta(days=1)).items}


def test_the_ledger_pages_newest_first_and_a_broken_cursor_is_refused(world: World):
    t, p = world.teacher(), world.parent()
    for n in (1, 2, 3, 4):
        adjust(world, p, t, n, at=T0 + timedelta(minutes=n))

    def page(after: str | None, size: int = 2) -> tuple[list[int], str | None]:
        got = world.svc.tx_sync(wallet_service.ledger_page, parent_id=p[0].id, page_size=size, after=after)
        return [e.lessons for e in got.items], got.next_cursor

    first, cursor = page(None)
    assert first == [4, 3] and cursor is not None
    assert page(cursor) == ([2, 1], None)
    first, cursor = page(None, size=3)  # the cursor is the page's last entry, not its second
    assert first == [4, 3, 2] and cursor is not None
    assert page(cursor, size=3) == ([1], None)
    assert page(None, size=4)[1] is None  # exactly one page: no next
    for broken in ("x1", "e", "eabc", "e" + "1" * 19, "e" + "1" * 25, "-1"):  # 20 characters or more: broken
        with refused(422):
            page(broken)
    assert page("e" + "9" * 18)[0] == [4, 3]  # a cursor past the newest: from the newest


def test_a_credit_booking_draws_from_the_lot_expiring_first_and_an_early_cancel_gives_it_back_once(world: World):
    t, p = world.teacher(), world.parent()
    world.buy_package(p, t, lessons=3, price=15000)  # valid 90 days from now
    now = datetime.now(UTC)
    [soon] = adjust(world, p, t, 1, at=now, valid_days=10)
    lesson = world.book(p, t, starts_at=hours_from_now(48), pay_with="credit")
    assert lesson.status == CONFIRMED
    assert [(k, n, lot) for k, n, lot in entries(world, p) if k == "draw"] == [("draw", -1, soon.lot_id)]
    assert balances(world, p, at=now)[-1] == ("total", 3)
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=lesson.id))  # 48 h ahead: early
    assert world.view(lesson.id).status == CANCELLED
    assert [(k, n, lot) for k, n, lot in entries(world, p) if k == "return"] == [("return", 1, soon.lot_id)]
    assert world.svc.tx_sync(ledger.give_back, booking_id=lesson.id, actor="t", now=now) is None  # once
    assert balances(world, p, at=now)[-1] == ("total", 4)
    page = world.svc.tx_sync(wallet_service.ledger_page, parent_id=p[0].id, page_size=10, after=None)
    money = sorted((e.kind, e.amount) for e in page.items)
    assert money == [("adjust", 0), ("draw", 0), ("purchase", 15000), ("return", 0)]  # only a purchase moves money


def test_the_operators_view_of_a_wallet_names_a_family_and_holds_its_purchases(world: World):
    t, p = world.teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=3, price=15000)
    now = datetime.now(UTC)
    seen = world.svc.tx_sync(wallet_service.wallet_of, parent_id=p[0].id, now=now)
    assert (seen.parent_id, seen.credits.total) == (p[0].id, 3)
    assert [(x.purchase_id, x.state, x.price) for x in seen.purchases] == [(purchase, "paid", 15000)]
    assert [(e.kind, e.lessons, e.amount) for e in seen.ledger] == [("purchase", 3, 15000)]
    for not_a_family in (t.id, world.admin().id, uuid.uuid4()):  # a teacher, an operator, nobody
        with refused(404):
            world.svc.tx_sync(wallet_service.wallet_of, parent_id=not_a_family, now=now)


def test_the_operators_view_of_a_wallet_shows_its_newest_100_entries(world: World):
    t, p = world.teacher(), world.parent()
    for n in range(101):
        adjust(world, p, t, 1, at=T0 + timedelta(minutes=n), reason=f"grant {n}")
    seen = world.svc.tx_sync(wallet_service.wallet_of, parent_id=p[0].id, now=T0)
    assert [e.reason for e in seen.ledger] == [f"grant {n}" for n in range(100, 0, -1)]  # not the first
    assert seen.credits.total == 101


def test_each_early_cancel_gives_back_its_own_credit_whatever_the_order_of_the_bookings_ids(world: World):
    t, p = world.teacher(), world.parent()
    world.buy_package(p, t, lessons=3, price=15000)
    lessons = [world.book(p, t, starts_at=hours_from_now(48 + 2 * n), pay_with="credit") for n in range(3)]
    low, mid, high = sorted(lessons, key=lambda b: b.id)
    now = datetime.now(UTC)
    assert balances(world, p, at=now)[-1] == ("total", 0)
    for n, b in enumerate((mid, low, high), 1):  # another booking's return on either side of each
        world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=b.id))
        assert balances(world, p, at=now)[-1] == ("total", n)
    assert sorted(k for k, _, _ in entries(world, p) if k == "return") == ["return"] * 3


def test_two_runs_racing_to_warn_of_one_lot_send_one_warning(world: World):
    t, p = world.teacher(), world.parent()
    adjust(world, p, t, 2, at=T0, valid_days=60)
    at = T0 + timedelta(days=30)
    [item] = world.svc.tx_sync(ledger.warnings_due, now=at, days=30)  # both runs listed it
    first = world.svc.tx_sync(wallet_service.warn_one, item=item, days=30, now=at)
    second = world.svc.tx_sync(wallet_service.warn_one, item=item, days=30, now=at)
    assert (first, second) == ("warned_30", "skipped")


def test_a_lesson_booked_with_a_granted_credit_is_priced_nothing(world: World):
    t, p = world.teacher(rate=6000), world.parent()
    adjust(world, p, t, 1, at=datetime.now(UTC))
    lesson = world.book(p, t, starts_at=hours_from_now(48), pay_with="credit")
    assert (lesson.status, lesson.price_amount) == (CONFIRMED, 0)  # a grant was paid nothing: nothing to refund


def test_an_expiry_warning_tells_the_parent_how_many_credits_of_which_teacher_and_when(world: World):
    t, p = world.teacher(), world.parent()
    adjust(world, p, t, 2, at=T0, valid_days=60)
    world.job("credits", at=T0 + timedelta(days=30))  # the 30-day warning
    stmt = sa.select(Notification).where(Notification.kind == "credits_expiring.parent")
    [(to, payload)] = world.svc.tx_sync(lambda s: [(n.user_id, dict(n.payload)) for n in s.scalars(stmt)])
    assert to == p[0].id
    assert payload == {
        "count": "2",
        "teacher": t.full_name,
        "teacherId": str(t.id),
        "expiresAt": (T0 + timedelta(days=60)).isoformat(),
        "days": "30",
    }


def test_each_family_reads_only_its_own_ledger_entries(world: World):
    t = world.teacher()
    families = [world.parent() for _ in range(3)]
    for n, p in enumerate(families, start=1):
        adjust(world, p, t, n, at=T0)
    for n, p in enumerate(families, start=1):
        rows = world.svc.tx_sync(ledger.entries, parent_id=p[0].id, limit=100)
        assert [(e.parent_id, e.lessons) for e in rows] == [(p[0].id, n)]


def test_a_credit_booking_draws_only_from_its_own_teachers_lots_whichever_teacher_sorts_first(world: World):
    lo, hi = sorted((world.teacher(), world.teacher()), key=lambda t: t.id)
    for booked, other in ((lo, hi), (hi, lo)):
        p = world.parent()
        now = datetime.now(UTC)
        [own] = adjust(world, p, booked, 1, at=now, valid_days=365)
        [sooner] = adjust(world, p, other, 1, at=now, valid_days=5)  # expires first: a wrong pick takes it
        lesson = world.book(p, booked, starts_at=hours_from_now(72), pay_with="credit")
        assert lesson.status == CONFIRMED
        draws = [lot for kind, _, lot in entries(world, p) if kind == "draw"]
        assert draws == [own.lot_id], (booked is lo, sooner.lot_id)


def test_no_expiry_warning_for_a_lot_at_or_past_its_expiry_instant(world: World):
    t, p = world.teacher(), world.parent()
    [lot] = adjust(world, p, t, 2, at=T0, valid_days=5)
    expires = T0 + timedelta(days=5)
    due = world.svc.tx_sync(ledger.warnings_due, now=expires - timedelta(microseconds=1), days=7)
    assert [e.lot_id for e in due] == [lot.lot_id]  # still valid: warned
    for at in (expires, expires + timedelta(days=1)):  # expired (the expiry job may not have run yet)
        assert world.svc.tx_sync(ledger.warnings_due, now=at, days=7) == []


def test_a_lot_past_its_expiry_counts_for_nothing_before_the_expiry_job_has_taken_it(world: World):
    t, p = world.teacher(), world.parent()
    adjust(world, p, t, 2, at=T0, valid_days=10)
    adjust(world, p, t, 1, at=T0, valid_days=30)
    later = T0 + timedelta(days=11)  # a day past the first lot's expiry; no expiry job has run
    assert balances(world, p, at=later) == [(t.id, 60, 1, T0 + timedelta(days=30)), ("total", 1)]
    usable = world.svc.tx_sync(ledger.available, parent_id=p[0].id, teacher_id=t.id, duration_minutes=60, now=later)
    assert usable == 1
    assert world.svc.tx_sync(lambda s: ledger.total(s, parent_id=p[0].id)) == 3  # still held until the job runs


def test_a_credit_booking_skips_a_lot_expiring_first_that_holds_no_credit_any_more(world: World):
    t, p = world.teacher(), world.parent()
    now = datetime.now(UTC)
    [emptied] = adjust(world, p, t, 1, at=now, valid_days=5)
    [removal] = adjust(world, p, t, -1, at=now)  # from the lot expiring first: it holds nothing now
    assert removal.lot_id == emptied.lot_id
    holding: list[uuid.UUID] = []  # lots of a later expiry whose ids sort before and after the emptied one's
    while not holding or not min(holding) < emptied.lot_id < max(holding):
        holding.append(adjust(world, p, t, 1, at=now, valid_days=30)[0].lot_id)
    lesson = world.book(p, t, starts_at=hours_from_now(48), pay_with="credit")
    assert lesson.status == CONFIRMED
    kept = min(holding)  # of one expiry: the first by id
    assert [lot for kind, _, lot in entries(world, p) if kind == "draw"] == [kept]
    held = world.svc.tx_sync(ledger.lot_balances, [emptied.lot_id, kept])
    assert held == {emptied.lot_id: 0, kept: 0}


def lots_expiring_first_elsewhere(
    world: World,
    family: tuple[AuthUser, uuid.UUID],
    teacher: AuthUser,
    *,
    other: AuthUser,
    neighbours: tuple[tuple[AuthUser, uuid.UUID], ...],
    at: datetime,
) -> None:
    """One credit in each lot that is not `family`'s of `teacher` at 60 minutes but expires
    first (5 days): the family's of `other`, its 30- and 90-minute ones of `teacher`, and each
    neighbouring family's of `teacher` (families whose ids sort on either side of `family`'s)."""
    adjust(world, family, other, 1, at=at, valid_days=5)
    adjust(world, family, teacher, 1, at=at, valid_days=5, minutes=30)
    adjust(world, family, teacher, 1, at=at, valid_days=5, minutes=90)
    for neighbour in neighbours:
        adjust(world, neighbour, teacher, 1, at=at, valid_days=5)


def test_a_removal_takes_only_the_named_family_teacher_and_length_whichever_sorts_first(world: World):
    lo, hi = sorted((world.teacher(), world.teacher()), key=lambda t: t.id)
    for named, other in ((lo, hi), (hi, lo)):
        below, family, above = sorted((world.parent() for _ in range(3)), key=lambda p: p[0].id)
        [own] = adjust(world, family, named, 1, at=T0, valid_days=365)
        # Each of these expires first: a removal reading beyond the family, teacher and length takes it.
        lots_expiring_first_elsewhere(world, family, named, other=other, neighbours=(below, above), at=T0)
        taken = adjust(world, family, named, -1, at=T0)
        assert [(e.lessons, e.lot_id) for e in taken] == [(-1, own.lot_id)], named is lo
        with refused(409):  # nothing else of that teacher and length in this family
            adjust(world, family, named, -1, at=T0)


def test_each_lot_is_warned_of_and_expired_by_its_own_credits_whichever_lot_sorts_first(world: World):
    t, p = world.teacher(), world.parent()
    [two] = adjust(world, p, t, 2, at=T0, valid_days=60)
    [three] = adjust(world, p, t, 3, at=T0, valid_days=60)
    due = world.svc.tx_sync(ledger.warnings_due, now=T0 + timedelta(days=30), days=30)
    assert sorted((e.lot_id, e.lessons) for e in due) == sorted([(two.lot_id, 2), (three.lot_id, 3)])
    # A spent lot past its expiry, with lots holding credit whose ids sort before and after its own.
    [spent] = adjust(world, p, t, 1, at=T0, valid_days=5)
    assert adjust(world, p, t, -1, at=T0)[0].lot_id == spent.lot_id
    holding = [two.lot_id, three.lot_id]
    while not min(holding) < spent.lot_id < max(holding):
        holding.append(adjust(world, p, t, 1, at=T0, valid_days=60)[0].lot_id)
    assert world.svc.tx_sync(ledger.due_to_expire, now=T0 + timedelta(days=5)) == []
    assert world.svc.tx_sync(ledger.warnings_due, now=T0 + timedelta(days=1), days=7) == []  # spent: no warning


def test_a_lot_long_past_its_expiry_is_expired_by_the_next_run_and_two_racing_runs_take_it_once(world: World):
    t, p = world.teacher(), world.parent()
    [lot] = adjust(world, p, t, 2, at=T0, valid_days=10)
    late = T0 + timedelta(days=12)  # no run of the job since two days before the lot's expiry
    [listed] = world.svc.tx_sync(ledger.due_to_expire, now=late)  # both runs listed it
    assert listed == lot.lot_id
    first = world.svc.tx_sync(wallet_service.expire_one, lot_id=listed, now=late)
    second = world.svc.tx_sync(wallet_service.expire_one, lot_id=listed, now=late)
    assert (first, second) == ("expired", "skipped")
    assert [(k, n, x) for k, n, x in entries(world, p) if k == "expire"] == [("expire", -2, lot.lot_id)]


def statements_of_a_credit_booking(world: World, p: tuple[AuthUser, uuid.UUID], t: AuthUser, hours: int) -> int:
    """How many statements a credit booking `hours` ahead sends to the database."""
    database = world.svc.db.engine.url.database
    sent: list[str] = []

    def counted(conn: sa.engine.Connection, _cursor: object, statement: str, *_args: object) -> None:
        if conn.engine.url.database == database:
            sent.append(statement)

    body = BookIn(
        teacher_id=t.id, student_id=p[1], subject="Mathematics", starts_at=hours_from_now(hours),
        duration_minutes=60, pay_with="credit",
    )  # fmt: skip
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", counted)
    try:
        assert world.run(flows.book(world.svc, parent=p[0], body=body)).booking.status == CONFIRMED
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", counted)
    return len(sent)


def test_a_credit_booking_takes_its_lot_from_the_slots_statement_whatever_else_the_wallet_holds(world: World):
    """The slot's statement names the lot to draw from (`ledger.FIRST_WITH_CREDIT`); a lot it named
    beyond the wallet's own would cost the booking its lots read again (`ledger.pick`)."""
    lo, hi = sorted((world.teacher(), world.teacher()), key=lambda t: t.id)
    now = datetime.now(UTC)
    alone = world.parent()
    for t in (lo, hi):
        adjust(world, alone, t, 2, at=now)
        statements_of_a_credit_booking(world, alone, t, 48)  # the path warm
    plain = {t.id: statements_of_a_credit_booking(world, alone, t, 50) for t in (lo, hi)}
    for booked, other in ((lo, hi), (hi, lo)):
        below, p, above = sorted((world.parent() for _ in range(3)), key=lambda x: x[0].id)
        [own] = adjust(world, p, booked, 1, at=now, valid_days=365)
        # Each expires before `own` (or expired already, the expiry job not yet run): none is drawn.
        lots_expiring_first_elsewhere(world, p, booked, other=other, neighbours=(below, above), at=now)
        adjust(world, p, booked, 1, at=now - timedelta(days=20), valid_days=10)
        assert statements_of_a_credit_booking(world, p, booked, 72) == plain[booked.id], booked is lo
        assert [lot for kind, _, lot in entries(world, p) if kind == "draw"] == [own.lot_id]


def test_the_credits_a_family_can_book_with_are_the_named_teachers_whichever_teacher_sorts_first(world: World):
    lo, hi = sorted((world.teacher(), world.teacher()), key=lambda t: t.id)
    p = world.parent()
    adjust(world, p, lo, 1, at=T0)
    adjust(world, p, hi, 2, at=T0)
    for t, held in ((lo, 1), (hi, 2)):
        usable = world.svc.tx_sync(ledger.available, parent_id=p[0].id, teacher_id=t.id, duration_minutes=60, now=T0)
        assert usable == held, t is lo


def test_a_purchase_names_its_own_lot_and_an_unpaid_one_whose_id_sorts_before_it_names_none(world: World):
    # Two purchases opened; the one whose id sorts LAST is paid (so a lookup that matched any id
    # at or after the unpaid one's would answer the paid one's lot).
    t, p = world.teacher(), world.parent()
    unpaid, paid = sorted(world.buy_package(p, t, pay=False) for _ in range(2))
    checkout = world.fake.session_of(paid).id
    world.fake.pay(checkout)
    world.run(package_flows.confirm(world.svc, parent=p[0], checkout_id=checkout))
    assert world.purchase_state(unpaid) == "open" and world.purchase_state(paid) == "paid"

    def lot_of(purchase_id: uuid.UUID) -> tuple[uuid.UUID | None, int] | None:
        def read(session) -> tuple[uuid.UUID | None, int] | None:
            found = ledger.lot_of_purchase(session, purchase_id)
            return None if found is None else (found.purchase_id, found.lessons)

        return world.svc.tx_sync(read)

    assert lot_of(unpaid) is None
    assert lot_of(paid) == (paid, 3)


def test_the_slots_statement_names_the_lot_a_draw_takes_never_one_past_its_expiry(world: World):
    # FIRST_WITH_CREDIT (the lot a credit booking draws from, asked in the slot's own statement):
    # the soonest-expiring lot that holds credit and is still usable at `now` (`now < expires_at`).
    t, p = world.teacher(), world.parent()
    [soon] = adjust(world, p, t, 2, at=T0, valid_days=10)
    [later] = adjust(world, p, t, 1, at=T0, valid_days=30)

    def named(at: datetime) -> tuple[uuid.UUID | None, uuid.UUID]:
        params = {"parent_id": p[0].id, "teacher_id": t.id, "wallet_minutes": 60, "wallet_now": at}
        first = world.svc.tx_sync(lambda s: s.scalar(sa.select(ledger.FIRST_WITH_CREDIT), params))
        picked = world.svc.tx_sync(
            lambda s: ledger.pick(s, parent_id=p[0].id, teacher_id=t.id, duration_minutes=60, now=at).id
        )
        return first, picked

    assert named(T0) == (soon.lot_id, soon.lot_id)
    edge = T0 + timedelta(days=10)
    assert named(edge - timedelta(microseconds=1)) == (soon.lot_id, soon.lot_id)
    assert named(edge) == (later.lot_id, later.lot_id)  # gone at its instant, the expiry job not run
    assert named(edge + timedelta(days=1)) == (later.lot_id, later.lot_id)



def test_the_ledgers_own_choice_passes_over_an_emptied_lot_expiring_first_and_finds_none_after_the_last(world: World):
    # `pick` (a draw's lot when the slot's statement named none of the locked lots; a weekly series).
    t, p = world.teacher(), world.parent()
    [emptied] = adjust(world, p, t, 1, at=T0, valid_days=5)
    [removal] = adjust(world, p, t, -1, at=T0)  # from the lot expiring first: it holds nothing now
    assert removal.lot_id == emptied.lot_id
    [holding] = adjust(world, p, t, 1, at=T0, valid_days=30)

    def picked() -> uuid.UUID:
        return world.svc.tx_sync(
            lambda s: ledger.pick(s, parent_id=p[0].id, teacher_id=t.id, duration_minutes=60, now=T0).id
        )

    assert picked() == holding.lot_id
    adjust(world, p, t, -1, at=T0)  # the last credit taken: both lots hold nothing
    assert world.svc.tx_sync(ledger.lot_balances, [emptied.lot_id, holding.lot_id]) == {
        emptied.lot_id: 0,
        holding.lot_id: 0,
    }
    with pytest.raises(NoCredit):
        picked()


def test_expiring_a_lot_before_its_instant_or_one_that_does_not_exist_takes_nothing(world: World):
    t, p = world.teacher(), world.parent()
    [lot] = adjust(world, p, t, 2, at=T0, valid_days=10)
    edge = T0 + timedelta(days=10)

    def expire(lot_id: uuid.UUID, at: datetime) -> int | None:
        """The lessons the expiry entry took (None: no entry)."""

        def go(session) -> int | None:
            entry = ledger.expire(session, lot_id=lot_id, actor="job:credits", now=at)
            return None if entry is None else entry.lessons

        return world.svc.tx_sync(go)

    assert expire(lot.lot_id, edge - timedelta(microseconds=1)) is None
    assert expire(uuid.uuid4(), edge) is None
    assert world.svc.tx_sync(lambda s: ledger.total(s, parent_id=p[0].id)) == 2
    assert expire(lot.lot_id, edge) == -2  # at its instant what is left goes
    assert world.svc.tx_sync(lambda s: ledger.total(s, parent_id=p[0].id)) == 0


def test_a_lot_a_day_past_its_expiry_is_neither_picked_nor_removed_from_before_the_expiry_job(world: World):
    # At the instant itself `test_an_expired_lot_counts_for_no_removal`; here a day after, the
    # expiry job not run yet: the lot still holds its credits but none is usable.
    t, p = world.teacher(), world.parent()
    [old] = adjust(world, p, t, 2, at=T0, valid_days=10)
    [kept] = adjust(world, p, t, 1, at=T0, valid_days=30)
    later = T0 + timedelta(days=11)
    picked = world.svc.tx_sync(
        lambda s: ledger.pick(s, parent_id=p[0].id, teacher_id=t.id, duration_minutes=60, now=later).id
    )
    assert picked == kept.lot_id
    with refused(409) as caught:
        adjust(world, p, t, -2, at=later)
    assert str(caught[0]) == "The family holds only 1 such credits"
    assert [(e.lessons, e.lot_id) for e in adjust(world, p, t, -1, at=later)] == [(-1, kept.lot_id)]
    assert world.svc.tx_sync(ledger.lot_balances, [old.lot_id, kept.lot_id]) == {old.lot_id: 2, kept.lot_id: 0}
