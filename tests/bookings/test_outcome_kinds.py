"""OutcomeKind is the one list of what a use case or a Stripe event did (or, where the reason
says it all, the Reason): its values are the words the webhook has always answered."""

import typing

import pytest

from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.outcomes import OutcomeKind
from tutorbook.teachers.payouts import AccountChange


@pytest.mark.parametrize("change", typing.get_args(AccountChange))
def test_every_account_change_is_a_kind(change):
    assert OutcomeKind(f"account_{change}").startswith("account_")


def test_no_kind_is_also_a_reason():
    assert not {k.value for k in OutcomeKind} & {r.value for r in Reason}


def test_the_kinds_are_the_words_the_webhook_has_always_answered():
    assert {k.value for k in OutcomeKind} == {
        "confirmed", "already_fulfilled", "already_refunded", "awaiting_payment", "cancelled", "not_confirmed",
        "refunded", "repeated", "no_change", "unknown_booking", "received", "ignored", "duplicate",
        "refund_recorded", "transfer_recorded", "fee_recorded", "split_recorded", "account_updated",
        "account_stale", "account_unknown_account",
        # A package purchase's checkout (issue #28): its credits added, or given up unpaid.
        "credits_added", "purchase_given_up",
    }  # fmt: skip
