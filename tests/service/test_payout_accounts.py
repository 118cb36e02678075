"""A teacher's payout account as stored (`teachers/payouts.py`), without HTTP: what a teacher
without one is shown, and an account's teacher found by its Stripe id among several."""

from __future__ import annotations

import pytest

from tests.service.world import World
from tutorbook.teachers import payouts

pytestmark = pytest.mark.service


def test_a_teacher_without_an_account_is_shown_not_connected_and_nothing_enabled(world: World):
    t = world.teacher()
    shown = world.svc.tx_sync(payouts.status, teacher_id=t.id)
    assert (shown.connected, shown.account_id, shown.charges_enabled, shown.payouts_enabled) == (
        False,
        None,
        False,
        False,
    )
    assert (shown.details_submitted, shown.currently_due, shown.disabled_reason, shown.enabled) == (
        False,
        [],
        None,
        False,
    )
    assert world.svc.tx_sync(payouts.destination, teacher_id=t.id) is None


def test_each_account_names_its_own_teacher(world: World):
    teachers = [world.payable_teacher() for _ in range(3)]
    for t in teachers:
        account = world.svc.tx_sync(payouts.account_id, teacher_id=t.id)
        assert account is not None
        assert world.svc.tx_sync(payouts.teacher_of_account, account_id=account) == t.id
    assert world.svc.tx_sync(payouts.teacher_of_account, account_id="acct_nobody") is None
