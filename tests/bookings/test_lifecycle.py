"""The state machine, without a database: every allowed and every forbidden move."""

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from tutorbook.bookings import lifecycle
from tutorbook.bookings.lifecycle import ALLOWED, IllegalTransition, Reason, Status

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
STATES = [None, *Status]


@pytest.mark.parametrize("current,target,reason", list(product(STATES, list(Status), list(Reason))))
def test_check_allows_exactly_the_table(current, target, reason):
    allowed = reason in ALLOWED.get((current, target), frozenset())
    if allowed:
        lifecycle.check(current, target, reason)
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.check(current, target, reason)


def test_there_are_exactly_four_statuses_named_as_the_frontend_expects():
    assert {s.value: s.label for s in Status} == {0: "Pending", 1: "Confirmed", 2: "Completed", 3: "Cancelled"}


def test_a_new_booking_starts_pending():
    change = lifecycle.book(now=NOW)
    assert (change.current, change.target, change.at) == (None, Status.PENDING, NOW)


@pytest.mark.parametrize("current", list(Status))
def test_only_a_pending_booking_can_be_confirmed_by_payment(current):
    if current == Status.PENDING:
        change = lifecycle.confirm_payment(current, now=NOW, payment_intent_id="pi_1")
        assert change.fields["paid_at"] == NOW and change.fields["stripe_payment_intent_id"] == "pi_1"
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.confirm_payment(current, now=NOW, payment_intent_id="pi_1")


@pytest.mark.parametrize("current,reason", list(product(Status, lifecycle.CANCELLATION_REASONS)))
def test_cancel_carries_a_listed_reason_from_pending_or_confirmed(current, reason):
    ok = reason in ALLOWED.get((current, Status.CANCELLED), frozenset())
    if ok:
        change = lifecycle.cancel(current, reason=reason, now=NOW)
        assert change.fields["cancellation_reason"] == reason.value
        assert change.fields["cancelled_at"] == NOW
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.cancel(current, reason=reason, now=NOW)


def test_a_paid_booking_cannot_be_cancelled_as_if_unpaid():
    with pytest.raises(IllegalTransition):
        lifecycle.cancel(Status.CONFIRMED, reason=Reason.CHECKOUT_EXPIRED, now=NOW)


@pytest.mark.parametrize("reason", [Reason.PAID, Reason.SESSION_ENDED, Reason.BOOKED])
def test_cancel_refuses_reasons_that_are_not_cancellation_reasons(reason):
    with pytest.raises(IllegalTransition):
        lifecycle.cancel(Status.PENDING, reason=reason, now=NOW)


def test_the_job_completes_only_after_the_end():
    start, end = NOW - timedelta(hours=1), NOW + timedelta(minutes=1)
    with pytest.raises(lifecycle.TooEarlyToComplete):
        lifecycle.complete(Status.CONFIRMED, now=NOW, starts_at=start, ends_at=end, by_job=True)
    change = lifecycle.complete(Status.CONFIRMED, now=end, starts_at=start, ends_at=end, by_job=True)
    assert change.reason == Reason.SESSION_ENDED


def test_the_teacher_completes_once_the_session_has_started():
    start, end = NOW + timedelta(minutes=5), NOW + timedelta(hours=1)
    with pytest.raises(lifecycle.TooEarlyToComplete):
        lifecycle.complete(Status.CONFIRMED, now=NOW, starts_at=start, ends_at=end, by_job=False)
    change = lifecycle.complete(Status.CONFIRMED, now=start, starts_at=start, ends_at=end, by_job=False)
    assert change.reason == Reason.MARKED_COMPLETED


@pytest.mark.parametrize("current", [Status.PENDING, Status.COMPLETED, Status.CANCELLED])
def test_only_confirmed_bookings_complete(current):
    with pytest.raises(IllegalTransition):
        lifecycle.complete(current, now=NOW, starts_at=NOW, ends_at=NOW, by_job=True)


def test_a_late_payment_on_an_unpaid_cancellation_can_confirm_it():
    change = lifecycle.confirm_late_payment(Status.CANCELLED, now=NOW, payment_intent_id="pi_2", was_paid=False)
    assert change.target == Status.CONFIRMED
    assert change.fields["cancellation_reason"] is None and change.fields["paid_at"] == NOW


def test_a_late_payment_never_revives_a_paid_then_cancelled_booking():
    with pytest.raises(IllegalTransition):
        lifecycle.confirm_late_payment(Status.CANCELLED, now=NOW, payment_intent_id="pi", was_paid=True)


def test_a_refunded_late_payment_stays_cancelled():
    change = lifecycle.refund_late_payment(Status.CANCELLED, now=NOW, payment_intent_id="pi_3")
    assert (change.current, change.target) == (Status.CANCELLED, Status.CANCELLED)
    with pytest.raises(IllegalTransition):
        lifecycle.refund_late_payment(Status.PENDING, now=NOW, payment_intent_id="pi_3")


def test_replay_walks_a_valid_history_to_the_current_status():
    assert lifecycle.replay([(None, 0), (0, 1), (1, 2)]) == Status.COMPLETED
    assert lifecycle.replay([(None, 0), (0, 3), (3, 1)]) == Status.CONFIRMED


@pytest.mark.parametrize("history", [[(None, 0), (1, 2)], [(None, 0), (0, 2)], [(0, 1)]])
def test_replay_rejects_broken_or_forbidden_histories(history):
    with pytest.raises(ValueError):
        lifecycle.replay(history)


@pytest.mark.parametrize("current,reason", list(product(Status, lifecycle.REFUSED_PAYMENT_REASONS)))
def test_a_refused_payment_leaves_any_status_as_it_was(current, reason):
    change = lifecycle.refuse_payment(current, reason=reason, now=NOW)
    assert (change.current, change.target, change.reason) == (current, current, reason)
    assert set(change.fields) == {"updated_at"}


@pytest.mark.parametrize("reason", [Reason.PAID, Reason.LATE_PAYMENT_REFUNDED, Reason.CHECKOUT_EXPIRED])
def test_a_refused_payment_needs_a_refusal_reason(reason):
    with pytest.raises(IllegalTransition):
        lifecycle.refuse_payment(Status.PENDING, reason=reason, now=NOW)
