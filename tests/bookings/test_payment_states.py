"""A payment's state machine, without a database: every allowed and every forbidden move."""

import dataclasses
from datetime import UTC, datetime
from itertools import product

import pytest

from tutorbook.bookings import payment_states
from tutorbook.bookings.payment_states import IllegalPaymentMove, PaymentEvent, PaymentState

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
STATES = [None, *PaymentState]

# Written out by hand (docs/payments.md, "A payment's states"), NOT read from PAYMENT_MOVES: a
# change to the code's table must fail below. None is "no payment yet".
DOC_MOVES = {
    (None, "open", "created"),
    (None, "refused", "refused"),
    ("open", "paid", "paid"),
    ("open", "expired", "expired"),
    ("open", "withdrawn", "withdrawn"),
    ("expired", "paid", "late_paid"),
    ("withdrawn", "paid", "late_paid"),
    ("paid", "refunded", "refunded"),
}


def _doc_event(current, target):
    name = None if current is None else current.value
    found = [e for f, t, e in DOC_MOVES if f == name and t == target.value]
    return found[0] if found else None


@pytest.mark.parametrize("current,target", list(product(STATES, list(PaymentState))))
def test_a_payment_moves_exactly_as_the_documented_table_says(current, target):
    expected = _doc_event(current, target)
    if expected is None:
        with pytest.raises(IllegalPaymentMove):
            payment_states.move(current, target, now=NOW)
    else:
        change = payment_states.move(current, target, now=NOW)
        assert change.event == PaymentEvent(expected)
        assert change.fields == {"state": target.value, "updated_at": NOW}


def test_paying_records_when_and_through_which_payment_intent():
    change = payment_states.pay(PaymentState.OPEN, now=NOW, payment_intent_id="pi_1")
    assert change.fields == {"state": "paid", "updated_at": NOW, "paid_at": NOW, "stripe_payment_intent_id": "pi_1"}


@pytest.mark.parametrize("given_up", [PaymentState.EXPIRED, PaymentState.WITHDRAWN])
def test_a_late_payment_pays_a_checkout_that_was_given_up(given_up):
    assert payment_states.pay(given_up, now=NOW, payment_intent_id="pi_1").event == PaymentEvent.LATE_PAID


@pytest.mark.parametrize("state", [PaymentState.REFUNDED, PaymentState.REFUSED, PaymentState.PAID])
def test_a_payment_is_paid_only_once(state):
    with pytest.raises(IllegalPaymentMove):
        payment_states.pay(state, now=NOW, payment_intent_id="pi_1")


def test_giving_up_a_checkout_says_whether_it_expired_or_was_withdrawn():
    assert payment_states.give_up(PaymentState.OPEN, expired=True, now=NOW).target == PaymentState.EXPIRED
    assert payment_states.give_up(PaymentState.OPEN, expired=False, now=NOW).target == PaymentState.WITHDRAWN
    with pytest.raises(IllegalPaymentMove):
        payment_states.give_up(PaymentState.PAID, expired=True, now=NOW)


def test_only_a_paid_payment_is_refunded_in_full():
    assert payment_states.refunded_in_full(PaymentState.PAID, now=NOW).target == PaymentState.REFUNDED
    for state in (PaymentState.OPEN, PaymentState.REFUNDED, PaymentState.REFUSED):
        with pytest.raises(IllegalPaymentMove):
            payment_states.refunded_in_full(state, now=NOW)


def test_the_kinds_are_a_checkout_a_prepaid_credit_and_a_saved_cards_off_session_charge():
    # checkout: one Checkout Session; credit: a package's credit (issue 28); off_session: a weekly
    # series' later lesson charged to the card its first lesson saved (issue 29).
    assert set(payment_states.PAYMENT_KINDS) == {"checkout", "credit", "off_session"}


def test_a_payment_made_and_paid_at_once_is_written_as_its_moves_leave_it():
    opened = payment_states.move(None, PaymentState.OPEN, now=NOW)
    paid = payment_states.pay(PaymentState.OPEN, now=NOW, payment_intent_id=None)
    fields = payment_states.through([opened, paid])
    assert (fields["state"], fields["paid_at"], fields["stripe_payment_intent_id"]) == ("paid", NOW, None)


def test_payment_moves_written_at_once_must_start_new_and_follow_each_other():
    opened = payment_states.move(None, PaymentState.OPEN, now=NOW)
    paid = payment_states.pay(PaymentState.OPEN, now=NOW, payment_intent_id=None)
    with pytest.raises(ValueError):
        payment_states.through([paid])
    with pytest.raises(IllegalPaymentMove):  # paid twice: the second starts from paid
        payment_states.through([opened, paid, paid])


def test_moves_written_at_once_that_skip_a_state_are_refused_whichever_way_they_skip():
    # open, then paid -> refunded: the payment was never paid. The skipped state sorts after the
    # one the last move left ("paid" > "open") as well as before it, and both are refused.
    opened = payment_states.move(None, PaymentState.OPEN, now=NOW)
    refunded = payment_states.refunded_in_full(PaymentState.PAID, now=NOW)
    with pytest.raises(IllegalPaymentMove) as raised:
        payment_states.through([opened, refunded])
    assert (raised.value.current, raised.value.target) == (PaymentState.PAID, PaymentState.REFUNDED)
    expired = payment_states.give_up(PaymentState.OPEN, expired=True, now=NOW)
    late = payment_states.pay(PaymentState.WITHDRAWN, now=NOW, payment_intent_id="pi_1")
    with pytest.raises(IllegalPaymentMove):  # expired, then a late payment of a withdrawn one
        payment_states.through([opened, expired, late])


def test_a_checked_payment_move_cannot_be_changed_after_the_check():
    change = payment_states.pay(PaymentState.OPEN, now=NOW, payment_intent_id="pi_1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.target = PaymentState.REFUNDED  # type: ignore[misc]
    assert change.target == PaymentState.PAID


def test_a_forbidden_payment_move_is_a_conflict_that_names_both_states():
    with pytest.raises(IllegalPaymentMove) as raised:
        payment_states.move(PaymentState.REFUNDED, PaymentState.PAID, now=NOW)
    assert raised.value.status_code == 409
    assert raised.value.message == "A refunded payment cannot become paid"
    with pytest.raises(IllegalPaymentMove) as new:
        payment_states.move(None, PaymentState.PAID, now=NOW)
    assert new.value.status_code == 409
    assert new.value.message == "A new payment cannot become paid"
