"""A package lesson's payout to its teacher (issue #28 item 6; `bookings/lesson_payouts.py` and
`flows/lesson_payouts.py`), without HTTP: the fake Stripe, the clock of each job run set from the
lesson's own end. A Completed lesson paid with a purchased credit sends its teacher that credit's
price less the platform fee, once, as a transfer from the purchase's charge; the fee and the
account are fixed before the call; a lesson that cannot be paid yet waits for the next run."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.service.world import World, hours_from_now
from tutorbook.bookings import lesson_payouts
from tutorbook.bookings.models import Payment
from tutorbook.flows import lesson_payouts as flows
from tutorbook.flows import payouts as payout_flows
from tutorbook.payments.port import GatewayError, Refused
from tutorbook.teachers import payouts as payout_accounts

pytestmark = pytest.mark.service

PRICE, LESSONS = 15000, 3  # a credit paid 5,000
CREDIT, FEE = 5000, 750  # the platform's 15 % of 5,000
SHARE = CREDIT - FEE


def payment(world: World, booking_id: uuid.UUID) -> dict[str, Any]:
    """The lesson's `credit` payment as stored: its fee, account and recorded transfer."""

    def read(session) -> dict[str, Any]:
        row = session.scalar(sa.select(Payment).where(Payment.booking_id == booking_id))
        assert row is not None
        return {
            "fee": row.platform_fee_amount,
            "destination": row.payout_destination,
            "transfer": row.stripe_transfer_id,
            "transfer_amount": row.transfer_amount,
        }

    return world.svc.tx_sync(read)


def destination(world: World, teacher) -> str:
    account = world.svc.tx_sync(payout_accounts.account_id, teacher_id=teacher.id)
    assert account is not None
    return account


def complete(world: World, lesson, *, minutes: float = 1) -> dict[uuid.UUID | None, list[str]]:
    """The complete job run just after `lesson` ended: each booking's outcomes."""
    done = world.job("complete", at=lesson.ends_at + timedelta(minutes=minutes))
    out: dict[uuid.UUID | None, list[str]] = {}
    for item in done.items:
        out.setdefault(item.booking_id, []).append(item.outcome)
    return out


def enable_payouts(world: World, teacher) -> None:
    world.run(payout_flows.onboard(world.svc, teacher=teacher))
    world.fake.enable_account(destination(world, teacher))
    world.run(payout_flows.refresh(world.svc, teacher=teacher))


def books(world: World, purchase_id: uuid.UUID, fee_percent: float = 15) -> lesson_payouts.PurchaseBooks:
    found = world.svc.tx_sync(lesson_payouts.books_of, purchase_id=purchase_id, fee_percent=fee_percent)
    assert found is not None
    return found


def test_a_completed_package_lesson_pays_its_teacher_the_credits_price_less_the_fee_once(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    assert world.svc.tx_sync(lesson_payouts.due, fee_percent=15) == []  # Confirmed: not delivered yet
    assert complete(world, lesson)[lesson.id] == ["completed", "transferred"]

    [transfer] = world.fake.transfers_to(destination(world, t))
    assert (transfer.amount, transfer.metadata["booking_id"]) == (SHARE, str(lesson.id))
    assert transfer.metadata["purchase_id"] == str(purchase)
    assert world.fake.called("create_transfer")[0]["key"] == f"lesson-payout-{lesson.id}"
    assert payment(world, lesson.id) == {
        "fee": FEE,
        "destination": destination(world, t),
        "transfer": transfer.id,
        "transfer_amount": SHARE,
    }
    # Never due again: the next runs send nothing more.
    assert world.svc.tx_sync(lesson_payouts.due, fee_percent=15) == []
    assert lesson.id not in complete(world, lesson, minutes=30)
    assert len(world.fake.transfers_to(destination(world, t))) == 1
    kept = books(world, purchase)
    assert (kept.money, kept.refunds_in_flight, kept.shares, kept.transferred) == (PRICE, 0, SHARE, SHARE)
    assert kept.unpaid_lessons == ()


def test_each_lesson_of_a_purchase_gets_its_own_transfer_not_one_made_for_another(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    first = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    second = world.book(p, t, starts_at=hours_from_now(7), pay_with="credit")
    assert complete(world, first)[first.id] == ["completed", "transferred"]
    # The first lesson's transfer is in the purchase's transfer group: the second's is not it.
    assert complete(world, second)[second.id] == ["completed", "transferred"]
    transfers = world.fake.transfers_to(destination(world, t))
    assert sorted(x.metadata["booking_id"] for x in transfers) == sorted([str(first.id), str(second.id)])
    assert {payment(world, first.id)["transfer"], payment(world, second.id)["transfer"]} == {x.id for x in transfers}
    kept = books(world, purchase)
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (2 * SHARE, 2 * SHARE, ())


def test_a_transfer_made_whose_record_was_lost_is_adopted_not_made_again(world: World):
    t, p = world.payable_teacher(), world.parent()
    world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    assert complete(world, lesson)[lesson.id] == ["completed", "transferred"]
    made = world.fake.transfers_to(destination(world, t))
    assert len(made) == 1

    def forget(session) -> None:  # the crash after Stripe answered: no transfer recorded
        session.execute(
            sa.update(Payment).where(Payment.booking_id == lesson.id).values(stripe_transfer_id=None, transfer_amount=0)
        )

    world.svc.tx_sync(forget)
    world.fake.keys.clear()  # past Stripe's 24 hours: the idempotency key no longer protects
    [due] = flows.due_sync(world.svc)
    assert flows.pay_sync(world.svc, due, now=lesson.ends_at + timedelta(days=2)) == "transferred"
    assert world.fake.transfers_to(destination(world, t)) == made
    assert payment(world, lesson.id)["transfer"] == made[0].id
    # Recorded by another run meanwhile: this one says so and records nothing.
    assert flows.pay_sync(world.svc, due, now=lesson.ends_at + timedelta(days=2)) == "recorded_already"


def test_a_teacher_without_payouts_is_paid_once_they_can_receive_them(world: World):
    t, p = world.teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    assert complete(world, lesson)[lesson.id] == ["completed"]
    assert payment(world, lesson.id) == {"fee": None, "destination": None, "transfer": None, "transfer_amount": 0}
    kept = books(world, purchase)
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (SHARE, 0, (lesson.id,))
    enable_payouts(world, t)
    assert complete(world, lesson, minutes=30)[lesson.id] == ["transferred"]
    assert [x.amount for x in world.fake.transfers_to(destination(world, t))] == [SHARE]


def test_the_fee_is_fixed_before_the_call_so_a_retry_asks_for_the_same_transfer(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    world.fake.fail_next("create_transfer", GatewayError("Stripe is down"))
    assert complete(world, lesson)[lesson.id] == ["completed", "stripe_unavailable"]
    assert payment(world, lesson.id)["fee"] == FEE and payment(world, lesson.id)["transfer"] is None
    # The platform's fee is 20 % by the next run: the lesson's stays the 15 % fixed before.
    [due] = world.svc.tx_sync(lesson_payouts.due, fee_percent=20)
    assert (due.amount, due.fee, due.destination) == (SHARE, FEE, destination(world, t))
    assert due.idempotency_key == f"lesson-payout-{lesson.id}"
    assert books(world, purchase, fee_percent=20).shares == SHARE
    assert flows.pay_sync(world.svc, due, now=lesson.ends_at + timedelta(hours=1)) == "transferred"
    assert [x.amount for x in world.fake.transfers_to(destination(world, t))] == [SHARE]


def test_a_payout_stripe_refuses_is_left_for_reconcile_to_report(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    world.fake.fail_next("create_transfer", Refused("Insufficient funds in the source transaction"))
    assert complete(world, lesson)[lesson.id] == ["completed", "refused"]
    assert payment(world, lesson.id)["transfer"] is None
    assert books(world, purchase).unpaid_lessons == (lesson.id,)
    world.fake.fail_next("list_transfers", GatewayError("Stripe is down"))
    [due] = flows.due_sync(world.svc)
    assert flows.pay_sync(world.svc, due, now=lesson.ends_at + timedelta(hours=1)) == "stripe_unavailable"
    assert world.fake.transfers_to(destination(world, t)) == []


def test_a_whole_fee_leaves_nothing_to_send_and_stays_fixed(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    world.fake.fail_next("create_transfer", GatewayError("Stripe is down"))
    assert complete(world, lesson)[lesson.id] == ["completed", "stripe_unavailable"]
    world.svc.tx_sync(_clear_fee, booking_id=lesson.id)  # as if no run had fixed it yet
    assert world.svc.tx_sync(lesson_payouts.due, fee_percent=100) == []
    assert payment(world, lesson.id)["fee"] == CREDIT
    assert world.svc.tx_sync(lesson_payouts.due, fee_percent=15) == []  # fixed: still nothing to send
    assert lesson.id not in complete(world, lesson, minutes=30)
    assert world.fake.transfers_to(destination(world, t)) == []
    kept = books(world, purchase)
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (0, 0, ())


def _clear_fee(session, *, booking_id: uuid.UUID) -> None:
    session.execute(sa.update(Payment).where(Payment.booking_id == booking_id).values(platform_fee_amount=None))


def test_lessons_are_due_oldest_first_and_only_paid_purchases_are_checked_newest_first(world: World):
    t, p = world.payable_teacher(), world.parent()
    older = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    newer = world.buy_package(p, t, lessons=2, price=8000)
    unpaid = world.buy_package(p, t, lessons=2, price=8000, pay=False)
    later_one = world.book(p, t, starts_at=hours_from_now(9), pay_with="credit")
    sooner = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    world.fake.fail_next("create_transfer", GatewayError("Stripe is down"), times=2)
    complete(world, later_one)
    [first] = world.svc.tx_sync(lesson_payouts.due, fee_percent=15, limit=1)
    assert first.booking_id == sooner.id
    assert world.svc.tx_sync(lesson_payouts.paid_purchases) == [newer, older]
    assert world.svc.tx_sync(lesson_payouts.paid_purchases, limit=1) == [newer]
    assert unpaid not in world.svc.tx_sync(lesson_payouts.paid_purchases)
    assert world.svc.tx_sync(lesson_payouts.books_of, purchase_id=unpaid, fee_percent=15) is None
    assert world.svc.tx_sync(lesson_payouts.books_of, purchase_id=uuid.uuid4(), fee_percent=15) is None


def test_a_lesson_that_must_wait_does_not_hold_up_the_lessons_after_it(world: World):
    waiting_t, paid_t = world.teacher(), world.payable_teacher()
    p = world.parent()
    world.buy_package(p, waiting_t, lessons=LESSONS, price=PRICE)
    world.buy_package(p, paid_t, lessons=LESSONS, price=PRICE)
    first = world.book(p, waiting_t, starts_at=hours_from_now(5), pay_with="credit")  # ends first
    second = world.book(p, paid_t, starts_at=hours_from_now(7), pay_with="credit")
    done = complete(world, second)
    assert (done[first.id], done[second.id]) == (["completed"], ["completed", "transferred"])
    assert [x.amount for x in world.fake.transfers_to(destination(world, paid_t))] == [SHARE]


def test_each_purchases_books_hold_only_its_own_money(world: World):
    t, p = world.payable_teacher(), world.parent()
    one = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    two = world.buy_package(p, t, lessons=2, price=8000)
    assert (books(world, one).money, books(world, two).money) == (PRICE, 8000)


def test_a_transfer_in_the_purchases_group_for_no_lesson_of_it_is_not_adopted(world: World):
    t, p = world.payable_teacher(), world.parent()
    world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    first = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    second = world.book(p, t, starts_at=hours_from_now(7), pay_with="credit")
    assert complete(world, first)[first.id] == ["completed", "transferred"]
    [made] = world.fake.transfers_to(destination(world, t))
    # Another transfer in the same group, naming a booking id that sorts after every other.
    foreign = dataclasses.replace(
        made, id="tr_foreign", metadata={"booking_id": "f" * 8 + "-ffff-ffff-ffff-" + "f" * 12}
    )
    world.fake.transfers[foreign.id] = foreign
    assert complete(world, second)[second.id] == ["completed", "transferred"]
    own = payment(world, second.id)["transfer"]
    assert own not in (made.id, foreign.id)
    assert world.fake.transfers[own].metadata["booking_id"] == str(second.id)
