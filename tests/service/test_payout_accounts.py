"""A teacher's payout account as stored (`teachers/payouts.py`), without HTTP: what a teacher
without one is shown, and an account's teacher found by its Stripe id among several."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from tests.service.world import World
from tutorbook.teachers import payouts
from tutorbook.teachers.models import PayoutAccount

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


def _accounts(world: World, ids: list[str], *, state_at: datetime) -> dict[str, uuid.UUID]:
    """Teachers with accounts of these Stripe ids, stored in this order (their ids need not sort
    the way they were stored: a query that picked "the first row" of several would show it)."""
    owners = {account: world.teacher().id for account in ids}

    def store(session: Session) -> None:
        for account, teacher_id in owners.items():
            session.add(
                PayoutAccount(
                    teacher_id=teacher_id,
                    stripe_account_id=account,
                    state_at=state_at,
                    created_at=state_at,
                    updated_at=state_at,
                )
            )

    world.svc.tx_sync(store)
    return owners


AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("stored", [["acct_B", "acct_A", "acct_C"], ["acct_A", "acct_C", "acct_B"]])
def test_an_account_is_found_by_its_own_id_however_the_ids_sort(world: World, stored: list[str]):
    owners = _accounts(world, stored, state_at=AT)
    for account, teacher_id in owners.items():
        assert world.svc.tx_sync(payouts.teacher_of_account, account_id=account) == teacher_id


@pytest.mark.parametrize("stored", [["acct_B", "acct_A", "acct_C"], ["acct_C", "acct_B", "acct_A"]])
def test_a_state_changes_its_own_account_alone(world: World, stored: list[str]):
    owners = _accounts(world, stored, state_at=AT)
    for account in sorted(owners):
        state = payouts.AccountState(id=account, charges_enabled=True, payouts_enabled=True, details_submitted=True)
        change = world.svc.tx_sync(payouts.apply_state, state=state, as_of=AT + timedelta(minutes=1), now=AT)
        assert change == "updated"
        shown = {a: world.svc.tx_sync(payouts.status, teacher_id=t).charges_enabled for a, t in owners.items()}
        assert shown == {a: a <= account for a in owners}, account


def test_a_state_as_of_the_instant_held_is_applied_an_older_one_is_stale(world: World):
    owners = _accounts(world, ["acct_A"], state_at=AT)
    enabled = payouts.AccountState(id="acct_A", charges_enabled=True, payouts_enabled=True, details_submitted=True)
    older = world.svc.tx_sync(payouts.apply_state, state=enabled, as_of=AT - timedelta(microseconds=1), now=AT)
    assert older == "stale"
    assert world.svc.tx_sync(payouts.status, teacher_id=owners["acct_A"]).charges_enabled is False
    same = world.svc.tx_sync(payouts.apply_state, state=enabled, as_of=AT, now=AT)
    assert same == "updated"
    assert world.svc.tx_sync(payouts.status, teacher_id=owners["acct_A"]).charges_enabled is True
