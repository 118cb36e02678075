"""The state machine, without a database: every allowed and every forbidden move."""

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from tutorbook.bookings import lifecycle
from tutorbook.bookings.lifecycle import ALLOWED, IllegalTransition, Reason, Status
from tutorbook.identity import Role

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
STATES = [None, *Status]


# The allowed moves as SPEC.md section 2 ("Transitions") and the README's rules state them, written
# out here by hand, NOT read from lifecycle.ALLOWED: a change to the code's table must fail below.
# (from, to, reason); None is "no booking yet".
SPEC_MOVES = {
    (None, "Pending", "booked"),
    ("Pending", "Confirmed", "paid"),
    # an unpaid checkout: left by the parent, expired, failed at Stripe, failed at booking
    ("Pending", "Cancelled", "payment_cancelled"),
    ("Pending", "Cancelled", "checkout_expired"),
    ("Pending", "Cancelled", "payment_failed"),
    ("Pending", "Cancelled", "checkout_failed"),
    # the product's documented choice (lifecycle.py): staff, and the parent, may also withdraw an
    # open checkout ("Admin: cancel any booking")
    ("Pending", "Cancelled", "parent_cancelled"),
    ("Pending", "Cancelled", "teacher_cancelled"),
    ("Pending", "Cancelled", "admin_cancelled"),
    ("Confirmed", "Completed", "session_ended"),
    ("Confirmed", "Completed", "marked_completed"),
    ("Confirmed", "Cancelled", "parent_cancelled"),
    ("Confirmed", "Cancelled", "teacher_cancelled"),
    ("Confirmed", "Cancelled", "admin_cancelled"),
    # a late payment on an unpaid cancellation: confirmed if the slot is free, else refunded in full
    ("Cancelled", "Confirmed", "late_payment_confirmed"),
    ("Cancelled", "Cancelled", "late_payment_refunded"),
    # README: a payment at another price, currency or checkout is refunded in full and the booking
    # left as it was, the reason in its history (a move from a status to itself)
    *(
        (s, s, r)
        for s in ("Pending", "Confirmed", "Completed", "Cancelled")
        for r in ("amount_mismatch", "currency_mismatch", "other_checkout")
    ),
}
SPEC_STATUSES = {"Pending": 0, "Confirmed": 1, "Completed": 2, "Cancelled": 3}  # the seed's four values
SPEC_REASONS = {reason for _, _, reason in SPEC_MOVES} | {"rescheduled"}  # a reschedule moves no status


def _spec_allows(current: Status | None, target: Status, reason: Reason) -> bool:
    name = None if current is None else current.label
    return (name, target.label, reason.value) in SPEC_MOVES


def test_the_spec_table_names_only_real_statuses_and_reasons():
    assert {s.label: s.value for s in Status} == SPEC_STATUSES
    assert {r.value for r in Reason} == SPEC_REASONS


@pytest.mark.parametrize("current,target,reason", list(product(STATES, list(Status), list(Reason))))
def test_check_allows_exactly_the_moves_the_spec_states(current, target, reason):
    if _spec_allows(current, target, reason):
        lifecycle.check(current, target, reason)
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.check(current, target, reason)


@pytest.mark.parametrize("current,target", list(product(STATES, list(Status))))
def test_replay_accepts_exactly_the_moves_the_spec_states(current, target):
    allowed = any(_spec_allows(current, target, r) for r in Reason)
    # a history that reaches `current` by allowed moves, then the move under test
    to_current = {
        None: [],
        Status.PENDING: [(None, 0)],
        Status.CONFIRMED: [(None, 0), (0, 1)],
        Status.COMPLETED: [(None, 0), (0, 1), (1, 2)],
        Status.CANCELLED: [(None, 0), (0, 3)],
    }[current]
    history = [*to_current, (None if current is None else int(current), int(target))]
    if allowed:
        assert lifecycle.replay(history) == target
    else:
        with pytest.raises(ValueError):
            lifecycle.replay(history)


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


@pytest.mark.parametrize("current,reason", list(product(Status, list(Reason))))
def test_cancel_carries_a_listed_reason_from_pending_or_confirmed(current, reason):
    # cancel() is the cancellation (Pending or Confirmed -> Cancelled); the moves from Cancelled to
    # itself (a refunded late or refused payment) are other functions'.
    if current in (Status.PENDING, Status.CONFIRMED) and _spec_allows(current, Status.CANCELLED, reason):
        change = lifecycle.cancel(current, reason=reason, now=NOW)
        assert change.fields["cancellation_reason"] == reason.value
        assert change.fields["cancelled_at"] == NOW
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.cancel(current, reason=reason, now=NOW)


def test_a_forbidden_move_is_a_409_conflict_and_too_early_a_400():
    with pytest.raises(IllegalTransition) as refused:
        lifecycle.check(Status.COMPLETED, Status.PENDING, Reason.BOOKED)
    assert refused.value.status_code == 409
    assert lifecycle.TooEarlyToComplete().status_code == 400


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


@pytest.mark.parametrize("by_job", [True, False])
def test_a_session_whose_end_has_long_passed_can_be_completed(by_job):
    start, end = NOW - timedelta(hours=3), NOW - timedelta(hours=2)
    change = lifecycle.complete(Status.CONFIRMED, now=NOW, starts_at=start, ends_at=end, by_job=by_job)
    assert change.reason == (Reason.SESSION_ENDED if by_job else Reason.MARKED_COMPLETED)


@pytest.mark.parametrize("by_job", [True, False])
@pytest.mark.parametrize("current", [Status.PENDING, Status.COMPLETED, Status.CANCELLED])
def test_only_confirmed_bookings_complete(current, by_job):
    with pytest.raises(IllegalTransition) as refused:
        lifecycle.complete(current, now=NOW, starts_at=NOW, ends_at=NOW, by_job=by_job)
    # The refusal names the move asked for: the job's "session ended", the teacher's "marked completed".
    assert refused.value.reason == (Reason.SESSION_ENDED if by_job else Reason.MARKED_COMPLETED)


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


@pytest.mark.parametrize("current,reason", list(product(Status, sorted(lifecycle.REFUSED_PAYMENT_REASONS))))
def test_a_refused_payment_leaves_any_status_as_it_was(current, reason):
    change = lifecycle.refuse_payment(current, reason=reason, now=NOW)
    assert (change.current, change.target, change.reason) == (current, current, reason)
    assert set(change.fields) == {"updated_at"}


@pytest.mark.parametrize("reason", [Reason.PAID, Reason.LATE_PAYMENT_REFUNDED, Reason.CHECKOUT_EXPIRED])
def test_a_refused_payment_needs_a_refusal_reason(reason):
    with pytest.raises(IllegalTransition):
        lifecycle.refuse_payment(Status.PENDING, reason=reason, now=NOW)


# -- reschedules: who may move a booking, from which status, until when, how many times ----------

START = NOW + timedelta(hours=48)
END = START + timedelta(hours=1)
RULE_CASES = [
    # (role, status, hours before the start, moves so far, deadline h, max) -> why not (None: allowed)
    (Role.PARENT, Status.CONFIRMED, 48, 0, 24, 2, None),
    (Role.PARENT, Status.CONFIRMED, 24, 1, 24, 2, None),  # exactly at the deadline: still allowed
    (Role.PARENT, Status.CONFIRMED, 23.99, 0, 24, 2, lifecycle.NoReschedule.DEADLINE_PASSED),
    (Role.PARENT, Status.CONFIRMED, 48, 2, 24, 2, lifecycle.NoReschedule.LIMIT_REACHED),
    (Role.PARENT, Status.CONFIRMED, 48, 0, 24, 0, lifecycle.NoReschedule.LIMIT_REACHED),
    # moved more often than the terms now allow (platform terms lowered since): still the limit
    (Role.PARENT, Status.CONFIRMED, 48, 3, 24, 2, lifecycle.NoReschedule.LIMIT_REACHED),
    (Role.PARENT, Status.CONFIRMED, 0, 0, 0, 2, lifecycle.NoReschedule.STARTED),
    (Role.TEACHER, Status.CONFIRMED, 0.1, 5, 24, 2, None),  # any time before the start, no limit
    (Role.TEACHER, Status.CONFIRMED, 0, 0, 24, 2, lifecycle.NoReschedule.STARTED),
    (Role.TEACHER, Status.CONFIRMED, -1, 0, 24, 2, lifecycle.NoReschedule.STARTED),
    (Role.ADMIN, Status.CONFIRMED, 1, 9, 24, 0, None),
]
RULE_CASES += [
    (role, status, 48, 0, 24, 2, lifecycle.NoReschedule.NOT_CONFIRMED)
    for role in Role
    for status in (Status.PENDING, Status.COMPLETED, Status.CANCELLED)
]


@pytest.mark.parametrize("role,status,hours_before,count,deadline,most,why", RULE_CASES)
def test_reschedule_rules(role, status, hours_before, count, deadline, most, why):
    now = START - timedelta(hours=hours_before)
    args = dict(role=role, now=now, starts_at=START, count=count, deadline_hours=deadline, max_reschedules=most)
    assert lifecycle.why_not_reschedule(status, **args) == why
    new_start = START + timedelta(days=1)
    if why is None:
        move = lifecycle.reschedule(status, ends_at=END, new_start=new_start, **args)
        assert (move.from_start, move.from_end, move.to_start, move.to_end) == (
            START,
            END,
            new_start,
            new_start + (END - START),
        )
        assert move.fields["starts_at"] == new_start and move.fields["ends_at"] == new_start + timedelta(hours=1)
        assert move.status == status and "status" not in move.fields  # not a status change
        counted = lifecycle.RESCHEDULE[role].counted
        assert move.fields["reschedule_count"] == count + (1 if counted else 0)
    else:
        with pytest.raises(lifecycle.RescheduleRefused) as refused:
            lifecycle.reschedule(status, ends_at=END, new_start=new_start, **args)
        assert refused.value.status_code == 409 and refused.value.data == {"reason": why.value}


def test_every_role_has_a_reschedule_rule_and_only_the_parent_is_bound_by_the_terms():
    assert set(lifecycle.RESCHEDULE) == set(Role)
    assert {r for r, rule in lifecycle.RESCHEDULE.items() if rule.deadline or rule.counted} == {Role.PARENT}
    assert all(rule.statuses == {Status.CONFIRMED} for rule in lifecycle.RESCHEDULE.values())


def test_a_reschedule_is_no_status_transition():
    assert all(Reason.RESCHEDULED not in reasons for reasons in ALLOWED.values())
    # Its history row goes from Confirmed to Confirmed and replays.
    assert lifecycle.replay([(None, 0), (0, 1), (1, 1), (1, 1), (1, 2)]) == Status.COMPLETED


def test_the_rules_and_the_changes_they_make_cannot_be_altered_after_the_fact():
    from dataclasses import FrozenInstanceError

    change = lifecycle.book(now=NOW)
    move = lifecycle.reschedule(
        Status.CONFIRMED,
        role=Role.TEACHER,
        now=NOW,
        starts_at=START,
        ends_at=END,
        new_start=START + timedelta(days=1),
        count=0,
        deadline_hours=24,
        max_reschedules=2,
    )
    for obj, attr, value in (
        (lifecycle.RESCHEDULE[Role.PARENT], "deadline", False),
        (change, "target", Status.CONFIRMED),
        (move, "to_start", NOW),
    ):
        with pytest.raises(FrozenInstanceError):
            setattr(obj, attr, value)


# -- the tables beside the state machine: who cancels with which reason, reasons in words ----------


def test_each_role_cancels_a_paid_booking_with_its_own_paid_reason():
    assert set(lifecycle.CANCELLED_BY) == set(Role)
    assert set(lifecycle.CANCELLED_BY.values()) == lifecycle.PAID_CANCEL_REASONS


REFUND_REASONS = {Reason.LATE_PAYMENT_REFUNDED, *lifecycle.REFUSED_PAYMENT_REASONS, lifecycle.ADMIN_REFUND}


@pytest.mark.parametrize("reason", sorted(lifecycle.CANCELLATION_REASONS | REFUND_REASONS))
def test_every_cancellation_and_refund_reason_has_words(reason):
    words = lifecycle.reason_words(reason)
    assert words and words != "cancelled"
    assert lifecycle.reason_words(str(reason)) == words  # as read back from a column


def test_the_words_are_the_ones_the_emails_have_always_said():
    assert lifecycle.reason_words(Reason.PARENT_CANCELLED) == "cancelled by the parent"
    assert lifecycle.reason_words(Reason.TEACHER_CANCELLED) == "cancelled by the teacher"
    assert lifecycle.reason_words(Reason.ADMIN_CANCELLED) == "cancelled by the Tutorbook team"
    assert lifecycle.reason_words(None) == lifecycle.reason_words("something_new") == "cancelled"


def test_a_booking_made_and_paid_at_once_is_written_as_its_moves_leave_it():
    booked = lifecycle.book(now=NOW)
    paid = lifecycle.confirm_payment(
        Status.PENDING, now=NOW + timedelta(seconds=1), payment_intent_id=None, terms={"terms_max_reschedules": 2}
    )
    status, fields = lifecycle.through([booked, paid])
    assert status == Status.CONFIRMED
    assert fields["paid_at"] == NOW + timedelta(seconds=1) and fields["updated_at"] == NOW + timedelta(seconds=1)
    assert fields["terms_max_reschedules"] == 2


def test_moves_written_at_once_must_start_new_and_follow_each_other():
    booked = lifecycle.book(now=NOW)
    paid = lifecycle.confirm_payment(Status.PENDING, now=NOW, payment_intent_id=None)
    with pytest.raises(ValueError):
        lifecycle.through([paid])
    with pytest.raises(ValueError):
        lifecycle.through([])
    with pytest.raises(IllegalTransition):  # Pending -> Confirmed twice: the second starts from Confirmed
        lifecycle.through([booked, paid, paid])
    cancelled = lifecycle.cancel(Status.CONFIRMED, reason=Reason.PARENT_CANCELLED, now=NOW)
    with pytest.raises(IllegalTransition):  # booked, then cancelled as if it had been Confirmed
        lifecycle.through([booked, cancelled])
