"""The card series of issue #29's "Done when", at the service level (the fake Stripe; both
databases): ten weeks; week 4's charge declined, paid through the emailed link; week 6's needs
authentication and is not paid in time, so only week 6 is cancelled and freed; week 8 moved; the
rest cancelled from week 9, each week refunded by its own terms."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import sqlalchemy as sa

from tests.series import steps
from tests.series.steps import CANCELLED, CONFIRMED, PENDING
from tests.service.fake_gateway import CARD_OUTCOMES
from tests.service.world import World, hours_from_now, refused
from tutorbook.clock import utc_now
from tutorbook.flows import booking as booking_flows
from tutorbook.flows import feeds
from tutorbook.flows import series as flows
from tutorbook.notifications import service as notices
from tutorbook.notifications.models import DevMail
from tutorbook.payments import saved_cards
from tutorbook.payments.port import GatewayError, Refused
from tutorbook.series import invite
from tutorbook.teachers import payouts as payout_accounts
from tutorbook.teachers import service as teachers_service

pytestmark = pytest.mark.service

OK_CARD, DECLINED_CARD, AUTH_CARD = "4242424242424242", "4000000000000341", "4000002760003184"


def saved_card(world: World, customer: str, number: str) -> None:
    """The parent's saved card is now `number` (the next off-session charge uses it)."""
    newest = world.fake.list_payment_methods_sync(customer)[0]
    world.fake.cards[newest.id].charge = CARD_OUTCOMES[number]


def test_a_ten_week_card_series_through_a_decline_a_missed_authentication_a_move_and_a_cancel(world: World):
    t, p = world.payable_teacher(), world.parent()
    first = hours_from_now(50)
    made = steps.book(world, p, t, first=first, weeks=10)
    weeks = {o.week: o for o in made.occurrences}
    assert made.checkout_url is not None
    checkout = world.fake.session_of(weeks[1].booking_id)
    assert world.deliver(world.fake.pay(checkout.id)) == "confirmed"  # week 1 paid, the card saved
    customer = checkout.customer
    assert customer is not None and world.fake.list_payment_methods_sync(customer)

    def run_at(week: int) -> dict[str, int]:
        return world.job("series", at=steps.due(weeks[week].starts_at, world)).counts()

    assert run_at(3) == {"confirmed": 2}  # weeks 2 and 3, charged off-session
    saved_card(world, customer, DECLINED_CARD)
    assert run_at(4) == {"declined": 1}
    four = steps.show(world, p[0], made.id).occurrences[3]
    assert (four.status, four.payment) == (PENDING, "due")
    assert four.pay_deadline_at == four.starts_at - timedelta(hours=24)
    [(kind, payload)] = [n for n in steps.notices(world, four.booking_id) if n[0].startswith("series_")]
    assert kind == "series_payment_due.parent" and payload["link"].endswith(f"/series/lessons/{four.booking_id}/pay")
    # The parent follows the link, leaves its checkout to expire; neither the expire job nor the
    # reconcile gives the lesson up before its deadline; the link then opens a new checkout.
    first_try = world.run(flows.pay_lesson(world.svc, parent=p[0], booking_id=four.booking_id))
    assert first_try.stripe_session_id
    world.deliver(world.fake.expire_at_stripe(first_try.stripe_session_id))
    world.job("expire", at=utc_now() + timedelta(days=1))
    world.job("reconcile", at=utc_now() + timedelta(minutes=5))
    assert world.view(four.booking_id).status == PENDING
    saved_card(world, customer, OK_CARD)
    paying = world.run(flows.pay_lesson(world.svc, parent=p[0], booking_id=four.booking_id))
    assert paying.checkout_url and paying.stripe_session_id not in (None, first_try.stripe_session_id)
    assert world.deliver(world.fake.pay(paying.stripe_session_id)) == "confirmed"
    assert world.view(four.booking_id).status == CONFIRMED

    assert run_at(5) == {"confirmed": 1}
    saved_card(world, customer, AUTH_CARD)
    assert run_at(6) == {"requires_action": 1}
    saved_card(world, customer, OK_CARD)
    six = weeks[6]
    # Not paid by its deadline (24 h before it starts): only week 6 is cancelled, its time freed.
    deadline = six.starts_at - timedelta(hours=24) + timedelta(minutes=1)
    assert world.job("series", at=deadline).counts() == {"cancelled_unpaid": 1}
    seen = steps.show(world, p[0], made.id)
    assert [o.status for o in seen.occurrences] == [CONFIRMED] * 5 + [CANCELLED] + [PENDING] * 4
    assert world.view(six.booking_id).cancellation_reason == "payment_failed"
    other = world.book(world.parent(), t, starts_at=six.starts_at)  # the freed hour books
    assert other.status == PENDING
    with refused(409):  # too late to pay it now
        world.run(flows.pay_lesson(world.svc, parent=p[0], booking_id=six.booking_id))

    assert run_at(8) == {"confirmed": 2}  # weeks 7 and 8
    eight = weeks[8]
    moved = world.run(
        booking_flows.reschedule(
            world.svc, user=p[0], booking_id=eight.booking_id, starts_at=eight.starts_at + timedelta(days=1)
        )
    )
    assert moved.starts_at == eight.starts_at + timedelta(days=1)

    assert run_at(9) == {"confirmed": 1}
    cancelled = world.run(flows.cancel_from(world.svc, user=p[0], series_id=made.id, day=weeks[9].starts_at.date()))
    final = {o.week: o for o in cancelled.occurrences}
    assert [final[w].status for w in range(1, 11)] == [CONFIRMED] * 5 + [CANCELLED] + [CONFIRMED] * 2 + [CANCELLED] * 2
    assert final[8].starts_at == eight.starts_at + timedelta(days=1) and final[8].original_starts_at == eight.starts_at
    # Week 9 was charged and is more than a day ahead: refunded in full; week 10 was never charged.
    assert world.refunds(weeks[9].booking_id) == [(made.price_amount, "succeeded")]
    assert (final[9].payment, final[10].payment) == ("refunded", "unpaid")
    assert world.refunds(weeks[10].booking_id) == []
    charged = [c["booking_id"] for c in world.fake.called("charge_off_session")]
    assert sorted(charged) == sorted(str(weeks[w].booking_id) for w in (2, 3, 4, 5, 6, 7, 8, 9))
    # Teachers are paid per charged lesson: each off-session charge is a destination charge.
    account = world.svc.tx_sync(payout_accounts.account_id, teacher_id=t.id)
    assert account and {c["destination"] for c in world.fake.called("charge_off_session")} == {account}
    assert all(c["application_fee"] for c in world.fake.called("charge_off_session"))


def test_a_job_run_twice_charges_each_week_once(world: World):
    t, p = world.teacher(), world.parent()
    made = steps.book(world, p, t, first=hours_from_now(50), weeks=3)
    world.deliver(world.fake.pay(world.fake.session_of(made.occurrences[0].booking_id).id))
    at = steps.due(made.occurrences[2].starts_at, world)
    assert world.job("series", at=at).counts() == {"confirmed": 2}
    assert world.job("series", at=at).counts() == {}
    assert len(world.fake.called("charge_off_session")) == 2


def test_stripe_unreachable_leaves_the_week_for_the_next_run(world: World):
    t, p = world.teacher(), world.parent()
    made = steps.book(world, p, t, first=hours_from_now(50), weeks=2)
    world.deliver(world.fake.pay(world.fake.session_of(made.occurrences[0].booking_id).id))
    at = steps.due(made.occurrences[1].starts_at, world)
    world.fake.fail_next("charge_off_session", GatewayError("down"))
    assert world.job("series", at=at).counts() == {"stripe_unavailable": 1}
    assert world.job("series", at=at).counts() == {"confirmed": 1}


BERLIN = ZoneInfo("Europe/Berlin")


def berlin_tuesday_before_summer_time_ends() -> datetime:
    """16:00 Berlin time on the Tuesday 12 days before the next end of summer time (the last
    Sunday of October) at least two weeks ahead: a five-week series crosses it."""
    today = utc_now().date()
    for year in (today.year, today.year + 1):
        last = date(year, 10, 31)
        sunday = last - timedelta(days=(last.weekday() + 1) % 7)
        tuesday = sunday - timedelta(days=12)
        if tuesday - today >= timedelta(days=14):
            return datetime.combine(tuesday, time(16, 0), BERLIN).astimezone(UTC)
    raise AssertionError("unreachable")


def emailed_invite(world: World, to: str, subject: str) -> bytes:
    """The text/calendar part of the last email to `to` whose subject starts with `subject`."""
    stmt = sa.select(DevMail).where(DevMail.to_address == to).order_by(DevMail.id)
    raws = world.svc.tx_sync(lambda s: [(m.subject, m.raw) for m in s.scalars(stmt)])
    [raw] = [r for subj, r in raws if subj.startswith(subject)][-1:]
    message = email.message_from_string(raw, policy=email.policy.default)
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"][-1:]
    return part.get_content().encode() if isinstance(part.get_content(), str) else part.get_content()


def held_starts(ics: bytes, start: datetime, end: datetime) -> list[datetime]:
    """The occurrences a calendar program would show: parsed with `icalendar`, expanded with
    `recurring-ical-events`, as UTC instants."""
    cal = icalendar.Calendar.from_ical(ics)
    return sorted(e["DTSTART"].dt.astimezone(UTC) for e in recurring_ical_events.of(cal).between(start, end))


def test_the_series_invite_download_and_feed_expand_to_exactly_the_held_weeks(world: World):
    t, p = world.teacher(), world.parent()
    world.svc.tx_sync(teachers_service.update_profile, teacher_id=t.id, fields={"time_zone": "Europe/Berlin"})
    # Across the end of summer time in Berlin: the lesson stays at 16:00 on the wall clock.
    first = berlin_tuesday_before_summer_time_ends()
    made = steps.book(world, p, t, first=first, weeks=5, skip=[(first + timedelta(weeks=1)).date()])
    weeks = {o.week: o for o in made.occurrences}
    assert [w.astimezone(BERLIN).hour for w in (weeks[1].starts_at, weeks[3].starts_at)] == [16, 16]
    assert weeks[3].starts_at - weeks[1].starts_at == timedelta(weeks=2, hours=1)  # the clocks went back
    world.deliver(world.fake.pay(world.fake.session_of(weeks[1].booking_id).id))
    assert world.job("series", at=steps.due(weeks[4].starts_at, world)).counts() == {"confirmed": 2}
    world.run(
        booking_flows.reschedule(
            world.svc, user=p[0], booking_id=weeks[3].booking_id, starts_at=weeks[3].starts_at + timedelta(hours=2)
        )
    )
    world.run(booking_flows.cancel_booking(world.svc, user=p[0], booking_id=weeks[4].booking_id))
    seen = steps.show(world, p[0], made.id)
    held = [o.starts_at for o in seen.occurrences if o.status != CANCELLED]
    assert len(held) == 3  # weeks 1, 3 (moved), 5
    window = (first - timedelta(days=1), first + timedelta(weeks=6))
    ics = world.svc.tx_sync(invite.download, user=p[0], series_id=made.id, settings=world.settings, now=utc_now())
    assert held_starts(ics, *window) == held
    cal = icalendar.Calendar.from_ical(ics)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 2 and all(e["SEQUENCE"] == seen.sequence for e in events)
    assert seen.sequence > 0 and "RRULE" in events[0] and "RECURRENCE-ID" in events[1]
    # The emailed invite of week 4's cancellation: the same series, the same held weeks.
    world.job("mail", at=utc_now() + timedelta(hours=1))
    invite_of_cancel = emailed_invite(world, p[0].email, "Booking cancelled")
    assert held_starts(invite_of_cancel, *window) == held
    assert icalendar.Calendar.from_ical(invite_of_cancel)["METHOD"] == "REQUEST"  # the series goes on
    # The calendar feed: the series once, the same held weeks.
    secret = world.svc.tx_sync(notices.new_calendar_secret, user_id=p[0].id)
    body = world.svc.tx_sync(feeds.feed, secret=secret, settings=world.settings, now=utc_now())
    assert body is not None and held_starts(body, *window) == held


def test_a_series_checkout_names_the_customer_saves_the_card_and_a_retry_has_its_own_key():
    params = {"customer_email": "p@example.com", "payment_intent_data": {"metadata": {}}}
    key = saved_cards.for_series(params, booking_id="b1", customer="cus_1", save_card=True, attempt=None)
    assert key == "checkout-b1" and params["customer"] == "cus_1" and "customer_email" not in params
    assert params["payment_intent_data"]["setup_future_usage"] == "off_session"
    again = saved_cards.for_series({}, booking_id="b1", customer=None, save_card=False, attempt="after-cs_1")
    assert again == "checkout-b1-after-cs_1"


def test_a_charge_stripe_refuses_sends_the_parent_the_link_instead(world: World):
    t, p = world.teacher(), world.parent()
    made = steps.book(world, p, t, first=hours_from_now(50), weeks=2)
    world.deliver(world.fake.pay(world.fake.session_of(made.occurrences[0].booking_id).id))
    world.fake.fail_next("charge_off_session", Refused("destination charges are not allowed here"))
    assert world.job("series", at=steps.due(made.occurrences[1].starts_at, world)).counts() == {"stripe_refused": 1}
    two = steps.show(world, p[0], made.id).occurrences[1]
    assert (two.status, two.payment) == (PENDING, "due")
    assert [k for k, _ in steps.notices(world, two.booking_id)] == ["series_payment_due.parent"]
