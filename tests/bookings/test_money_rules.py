"""The money rules without a database, each written from the rule (the terms, the time, the amounts),
with the clock fixed here: no result depends on the hour, the day or the machine's zone.

These are also the fast tests the mutation run (scripts/mutation.py) uses for bookings/policy.py and
the price; docs/RELIABILITY.md lists what they pin."""

from datetime import UTC, datetime, timedelta

import pytest

from tutorbook.bookings import policy
from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.reserving import price_for

# A start at 00:30 UTC on a Monday: "the day before" is another date, so a deadline computed from
# dates or local hours rather than from the instant is caught.
START = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
PRICE = 6000


def refund(reason=Reason.PARENT_CANCELLED, *, before, refunded=0, price=PRICE, full_hours=24, late=0):
    """What cancelling `before` (a timedelta) ahead of START refunds under these terms."""
    return policy.refund_amount(
        reason=reason,
        price=price,
        already_refunded=refunded,
        starts_at=START,
        now=START - before,
        full_before_hours=full_hours,
        late_percent=late,
    )


H = timedelta(hours=1)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    "before,expected",
    [
        (48 * H, PRICE),  # well ahead: everything back
        (24 * H, PRICE),  # exactly at the deadline: still the full refund ("at least 24 h before")
        (24 * H - S, 0),  # one second late: the late share (0 %)
        (23 * H, 0),  # an hour after the deadline: no full refund
        (1 * H, 0),
        (0 * H, 0),  # at the start
        (-1 * H, 0),  # after the start
    ],
)
def test_a_parent_gets_everything_back_only_up_to_the_deadline(before, expected):
    assert refund(before=before) == expected


@pytest.mark.parametrize(
    "full_hours,before,expected", [(48, 47 * H, 0), (48, 48 * H, PRICE), (2, 2 * H, PRICE), (2, H, 0)]
)
def test_the_deadline_is_the_booking_terms_hours_not_a_fixed_day(full_hours, before, expected):
    assert refund(before=before, full_hours=full_hours) == expected


@pytest.mark.parametrize("late,expected", [(0, 0), (25, 1500), (50, 3000), (100, 6000)])
def test_a_late_parent_gets_the_terms_share_of_the_price(late, expected):
    assert refund(before=2 * H, late=late) == expected


def test_a_late_share_of_an_odd_price_is_rounded_down_to_the_minor_unit():
    assert refund(before=H, price=999, late=50) == 499  # 499.5: the platform never pays out a fraction
    assert refund(before=H, price=1001, late=33) == 330  # 330.33


@pytest.mark.parametrize("reason", [Reason.TEACHER_CANCELLED, Reason.ADMIN_CANCELLED])
@pytest.mark.parametrize("before", [48 * H, 24 * H - S, H, -H])
def test_a_teacher_or_admin_cancelling_refunds_everything_at_any_time(reason, before):
    assert refund(reason, before=before) == PRICE


@pytest.mark.parametrize(
    "reason,before,due",
    [
        (Reason.PARENT_CANCELLED, 48 * H, True),
        (Reason.PARENT_CANCELLED, 24 * H, True),  # exactly at the deadline: still in full
        (Reason.PARENT_CANCELLED, 24 * H - S, False),  # one second late
        (Reason.PARENT_CANCELLED, -H, False),
        (Reason.TEACHER_CANCELLED, 48 * H, True),
        (Reason.TEACHER_CANCELLED, H, True),  # a teacher's cancellation: always in full
        (Reason.ADMIN_CANCELLED, -H, True),
    ],
)
def test_a_full_refund_is_due_before_the_deadline_or_whenever_the_teacher_or_an_admin_cancels(reason, before, due):
    """What decides whether a credit-paid lesson's credit comes back (issue 28): the same rule as
    a paid lesson's full refund."""
    assert policy.full_refund_due(reason=reason, starts_at=START, now=START - before, full_before_hours=24) is due
    assert (refund(reason, before=before) == PRICE) is due  # and it agrees with the refund itself


@pytest.mark.parametrize(
    "reason,before,late,refunded,expected",
    [
        # Partly refunded at Stripe already (2,500 of 6,000): only what is left can be asked for.
        (Reason.PARENT_CANCELLED, 48 * H, 0, 2500, 3500),
        (Reason.TEACHER_CANCELLED, H, 0, 2500, 3500),
        (Reason.ADMIN_CANCELLED, H, 0, 2500, 3500),
        # late 50 % = 3,000, but only 3,500 is left: 3,000; with 4,000 refunded only 2,000 is left
        (Reason.PARENT_CANCELLED, H, 50, 2500, 3000),
        (Reason.PARENT_CANCELLED, H, 50, 4000, 2000),
        (Reason.PARENT_CANCELLED, H, 100, 5999, 1),
        # nothing, or less than nothing, left: nothing is asked for
        (Reason.PARENT_CANCELLED, 48 * H, 0, 6000, 0),
        (Reason.TEACHER_CANCELLED, H, 0, 6000, 0),
        (Reason.TEACHER_CANCELLED, H, 0, 7000, 0),
        (Reason.PARENT_CANCELLED, H, 50, 7000, 0),
    ],
)
def test_a_partly_refunded_booking_never_asks_for_more_than_is_left(reason, before, late, refunded, expected):
    assert refund(reason, before=before, late=late, refunded=refunded) == expected


@pytest.mark.parametrize(
    "amount,percent,fee",
    [
        (6000, 15, 900),
        (3333, 15, 500),  # 499.95 -> 500
        (3330, 15, 500),  # 499.5 -> 500: half up
        (3329, 15, 499),  # 499.35 -> 499
        (1, 15, 0),  # 0.15 -> 0
        (4, 12.5, 1),  # 0.5 -> 1
        (6000, 0, 0),
        (6000, 100, 6000),
        (6000, 150, 6000),  # never more than the payment
        (6000, -5, 0),  # never negative
        (0, 15, 0),
    ],
)
def test_the_platform_fee_is_the_percent_rounded_half_up_within_the_payment(amount, percent, fee):
    assert policy.platform_fee(amount=amount, percent=percent) == fee


@pytest.mark.parametrize(
    "rate,minutes,price",
    [
        (6000, 60, 6000),  # whole hours are exact: the price never drifts a minor unit
        (6000, 120, 12000),
        (4999, 60, 4999),
        (6000, 45, 4500),
        (6000, 30, 3000),
        (1001, 30, 501),  # 500.5 -> 501: half up
        (1000, 50, 833),  # 833.33 -> 833
        (1000, 40, 667),  # 666.67 -> 667
        (0, 60, 0),
    ],
)
def test_the_price_is_the_hourly_rate_for_the_minutes_rounded_half_up(rate, minutes, price):
    assert price_for(hourly_rate=rate, minutes=minutes) == price


def test_price_and_fee_add_up_to_what_the_parent_pays_and_the_teacher_keeps():
    for rate in (1, 999, 1001, 3333, 6000):
        for minutes in (30, 45, 60, 90):
            price = price_for(hourly_rate=rate, minutes=minutes)
            fee = policy.platform_fee(amount=price, percent=15)
            assert 0 <= fee <= price
            assert abs(fee - price * 15 / 100) <= 0.5  # the fee is within half a minor unit of 15 %


def _booking_with_terms(full, late, deadline, most):
    """A booking whose terms record holds these (issue #27: booking_terms); None: no record."""
    from types import SimpleNamespace

    if full is None:
        return SimpleNamespace(terms_in_force=None)
    return SimpleNamespace(
        terms_in_force=SimpleNamespace(
            full_refund_hours=full,
            late_refund_percent=late,
            reschedule_deadline_hours=deadline,
            max_reschedules=most,
        )
    )


PLATFORM = policy.Terms(full_refund_hours=24, late_refund_percent=0, reschedule_deadline_hours=24, max_reschedules=2)


def test_a_booking_keeps_the_terms_it_was_paid_under():
    stored = policy.stored(_booking_with_terms(48, 25, 12, 3), platform=PLATFORM)
    assert stored == policy.Terms(
        full_refund_hours=48, late_refund_percent=25, reschedule_deadline_hours=12, max_reschedules=3
    )


def test_terms_stored_as_zero_stay_zero_not_the_platform_defaults():
    stored = policy.stored(_booking_with_terms(2, 0, 0, 0), platform=PLATFORM)
    assert stored == policy.Terms(
        full_refund_hours=2, late_refund_percent=0, reschedule_deadline_hours=0, max_reschedules=0
    )


def test_a_booking_paid_before_terms_were_stored_has_the_platform_terms():
    assert policy.stored(_booking_with_terms(None, None, None, None), platform=PLATFORM) == PLATFORM


def test_to_store_and_stored_round_trip():
    terms = policy.Terms(full_refund_hours=36, late_refund_percent=50, reschedule_deadline_hours=6, max_reschedules=1)
    columns = policy.to_store(terms)
    assert columns == {
        "terms_full_refund_hours": 36,
        "terms_late_refund_percent": 50,
        "terms_reschedule_deadline_hours": 6,
        "terms_max_reschedules": 1,
    }
    assert policy.stored(_booking_with_terms(*columns.values()), platform=PLATFORM) == terms
