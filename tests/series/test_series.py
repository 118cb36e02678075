"""Weekly series (issue #29), driven at the service level with the fake Stripe: the preview, all
weeks held or none, the race, the card series' first checkout saving the card, the expire job
leaving reserved weeks alone, an abandoned series let go, the rest cancelled from a date."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.series import steps
from tests.series.steps import CANCELLED, CONFIRMED, PENDING
from tests.service.world import World, hours_from_now, refused
from tutorbook.admin import reports
from tutorbook.bookings import lists, reporting
from tutorbook.clock import utc_now
from tutorbook.series import service
from tutorbook.series.schemas import SeriesIn
from tutorbook.teachers import service as teachers
from tutorbook.web import booking_pages

pytestmark = pytest.mark.service


def test_the_preview_gives_each_week_free_or_the_reason(world: World):
    t, p = world.teacher(), world.parent()
    first = hours_from_now(48)
    world.book_and_pay(world.parent(), t, starts_at=first + timedelta(weeks=1, minutes=30))
    away = first + timedelta(weeks=2)
    world.svc.tx_sync(
        teachers.add_time_off,
        teacher_id=t.id,
        starts_at=away - timedelta(hours=1),
        ends_at=away + timedelta(hours=3),
        note="holiday",
        now=utc_now(),
    )
    shown = steps.preview(world, p, t, first=first, weeks=4)
    assert [(w.week, w.free, w.reason) for w in shown.weeks] == [
        (1, True, None),
        (2, False, "busy"),
        (3, False, "time_off"),
        (4, True, None),
    ]
    assert [w.starts_at for w in shown.weeks] == [first + timedelta(weeks=k) for k in range(4)]
    assert (shown.price_amount, shown.currency) == (6000, "usd")
    assert world.every_booking()[-1].status == CONFIRMED and len(world.every_booking()) == 1  # nothing held


def test_a_series_with_a_taken_week_is_refused_whole_and_made_without_it(world: World):
    t, p = world.teacher(), world.parent()
    first = hours_from_now(48)
    world.book_and_pay(world.parent(), t, starts_at=first + timedelta(weeks=2))
    with refused(409) as caught:
        steps.book(world, p, t, first=first, weeks=4)
    assert caught[0].data == [{"week": 3, "date": (first + timedelta(weeks=2)).date().isoformat(), "reason": "busy"}]
    assert len(world.every_booking()) == 1  # none of the series was held
    made = steps.book(world, p, t, first=first, weeks=4, skip=[(first + timedelta(weeks=2)).date()])
    assert [o.week for o in made.occurrences] == [1, 2, 4]
    assert [o.status for o in made.occurrences] == [PENDING] * 3


def test_skipping_a_date_that_is_no_week_of_the_series_is_a_422(world: World):
    t, p = world.teacher(), world.parent()
    first = hours_from_now(48)
    with refused(422):
        steps.book(world, p, t, first=first, weeks=3, skip=[(first + timedelta(days=1)).date()])
    with refused(422):
        steps.book(world, p, t, first=first, weeks=2, skip=[first.date(), (first + timedelta(weeks=1)).date()])
    assert world.every_booking() == []


def test_a_card_series_pays_the_first_week_at_checkout_saving_the_card_and_reserves_the_rest(world: World):
    t, p = world.teacher(), world.parent()
    first = hours_from_now(48)
    made = steps.book(world, p, t, first=first, weeks=3)
    one, two, three = made.occurrences
    assert made.checkout_url and one.payment == "checkout" and one.checkout_url == made.checkout_url
    [call] = world.fake.called("create_series_checkout")
    assert call["booking_id"] == str(one.booking_id) and call["save_card"] is True
    assert call["customer"] in world.fake.customers and world.fake.customers[call["customer"]] == str(p[0].id)
    charge_on = (two.starts_at - timedelta(days=3)).date()
    assert (two.payment, two.charge_on, two.label) == ("reserved", charge_on, f"Reserved — charged on {charge_on}")
    assert all(o.status == PENDING for o in made.occurrences)
    # Long after the first checkout expired, the expire job cancels that week only.
    world.job("expire", at=utc_now() + timedelta(hours=3))
    seen = steps.show(world, p[0], made.id)
    assert [o.status for o in seen.occurrences] == [CANCELLED, PENDING, PENDING]
    # No card was saved: the series job lets the reserved weeks go.
    result = world.job("series", at=utc_now() + timedelta(hours=3))
    assert result.counts() == {"abandoned": 2}
    assert [o.status for o in steps.show(world, p[0], made.id).occurrences] == [CANCELLED] * 3
    assert world.fake.called("charge_off_session") == []


def test_only_its_parent_its_teacher_and_an_admin_see_a_series(world: World):
    t, p = world.teacher(), world.parent()
    made = steps.book(world, p, t, first=hours_from_now(48), weeks=2)
    assert steps.show(world, t, made.id).id == made.id
    assert steps.show(world, world.admin(), made.id).id == made.id
    with refused(403):
        steps.show(world, world.parent()[0], made.id)
    with refused(403):
        steps.show(world, world.teacher(), made.id)


def test_two_parents_racing_for_overlapping_series_one_wins_and_the_other_sees_the_weeks_taken(world: World):
    t, a, b = world.teacher(), world.parent(), world.parent()
    first = hours_from_now(72)
    requests = {
        "a": (a, SeriesIn(**steps.body(t, a[1], first=first, weeks=4), pay_with="card")),
        "b": (b, SeriesIn(**steps.body(t, b[1], first=first + timedelta(weeks=2), weeks=4), pay_with="card")),
    }
    won: dict[str, object] = {}
    go = threading.Barrier(2)

    def race(name: str) -> None:
        who, request = requests[name]
        go.wait()
        try:
            won[name] = world.svc.tx_sync(
                service.create,
                parent=who[0],
                body=request,
                settings=world.settings,
                platform=world.svc.terms,
                now=utc_now(),
            )
        except Exception as exc:  # the loser's 409
            won[name] = exc

    threads = [threading.Thread(target=race, args=(n,)) for n in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [n for n, r in won.items() if isinstance(r, service.Made)]
    lost = [n for n, r in won.items() if not isinstance(r, service.Made)]
    assert len(made) == 1 and len(lost) == 1, won
    assert getattr(won[lost[0]], "status_code", None) == 409
    loser, request = requests[lost[0]]
    shown = steps.preview(world, loser, t, first=request.first_starts_at, weeks=4)
    taken = [w.week for w in shown.weeks if w.reason == "busy"]
    assert taken == ([1, 2] if lost[0] == "b" else [3, 4])
    assert len(world.every_booking()) == 4


def test_time_off_over_a_reserved_week_lists_it_for_the_teacher_and_the_schedule_shows_the_weeks(world: World):
    t, p = world.teacher(), world.parent()
    made = steps.book(world, p, t, first=hours_from_now(48), weeks=3)
    world.deliver(world.fake.pay(world.fake.session_of(made.occurrences[0].booking_id).id))
    three = made.occurrences[2]
    added = world.svc.tx_sync(
        reporting.add_time_off,
        teacher_id=t.id,
        starts_at=three.starts_at - timedelta(hours=2),
        ends_at=three.ends_at + timedelta(hours=2),
        note="away",
        now=utc_now(),
    )
    assert [s["id"] for s in added["affected_sessions"]] == [three.booking_id]
    listed = world.svc.tx_sync(reporting.time_off_with_sessions, teacher_id=t.id, now=utc_now())
    assert [s["id"] for s in listed[0]["affected_sessions"]] == [three.booking_id]
    rows = world.svc.tx_sync(
        lambda s: lists.teacher_schedule(s, teacher_id=t.id, start=None, end=None, limit=10)
    )
    assert [(r["id"], r["status"]) for r in rows] == [
        (made.occurrences[0].booking_id, CONFIRMED),
        (made.occurrences[1].booking_id, PENDING),
        (three.booking_id, PENDING),
    ]


def test_my_bookings_groups_a_series_under_its_next_lesson_and_the_schedule_marks_each(world: World):
    t, p = world.teacher(), world.parent()
    made = steps.book(world, p, t, first=hours_from_now(48), weeks=4)
    world.deliver(world.fake.pay(world.fake.session_of(made.occurrences[0].booking_id).id))
    lone = world.book_and_pay(p, t, starts_at=hours_from_now(30))
    view = world.svc.tx_sync(
        booking_pages._my_bookings, parent=p[0], after=None, before=None, settings=world.settings, now=utc_now()
    )
    assert [b.id for b in view["upcoming"]] == [lone.id, made.occurrences[0].booking_id]
    assert view["more_weeks"] == {str(made.id): 3}
    two = str(made.occurrences[1].booking_id)
    schedule = world.svc.tx_sync(booking_pages._schedule, teacher=t, settings=world.settings, now=utc_now())
    assert len(schedule["upcoming"]) == 5
    assert schedule["weekly"][two]["series"] == str(made.id)
    assert schedule["weekly"][two]["label"].startswith("Reserved — charged on ")


def test_the_orphaned_sessions_report_leaves_out_reserved_weeks(world: World):
    t, p = world.teacher(), world.parent()
    made = steps.book(world, p, t, first=hours_from_now(48), weeks=3)
    world.deliver(world.fake.pay(world.fake.session_of(made.occurrences[0].booking_id).id))
    found = world.svc.tx_sync(reports.orphaned, now=utc_now() + timedelta(hours=5), older_than=timedelta(hours=1))
    assert found == []
