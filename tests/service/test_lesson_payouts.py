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

from tests.service.fake_gateway import Session
from tests.service.world import World, hours_from_now
from tutorbook.bookings import lesson_payouts
from tutorbook.bookings.models import Payment
from tutorbook.clock import utc_now
from tutorbook.errors import BadGateway
from tutorbook.flows import booking as booking_flows
from tutorbook.flows import lesson_payouts as flows
from tutorbook.flows import packages as package_flows
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
    line = world.earning(t, lesson.id)  # nothing refunded, earned or settled before it is delivered
    assert (line.gross, line.refunded, line.fee, line.net, line.settled) == (CREDIT, 0, 0, 0, False)
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


@pytest.mark.parametrize(("fee_percent", "fee"), [(99.98, CREDIT - 1), (50, CREDIT // 2), (0, 0)])
def test_whatever_the_fee_leaves_down_to_one_minor_unit_is_sent_and_unpaid_until_it_is(
    world: World, fee_percent: float, fee: int
):
    # A 99.98 % fee on a 5,000 credit is 4,999 (half up): one minor unit is the teacher's; half
    # of it is 2,500; none leaves it all to the teacher.
    t, p = world.teacher(), world.parent()  # no payouts yet: the complete job fixes nothing
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    assert complete(world, lesson)[lesson.id] == ["completed"]
    kept = books(world, purchase, fee_percent=fee_percent)
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (CREDIT - fee, 0, (lesson.id,))
    enable_payouts(world, t)
    [due] = world.svc.tx_sync(lesson_payouts.due, fee_percent=fee_percent)
    assert (due.booking_id, due.amount, due.fee) == (lesson.id, CREDIT - fee, fee)
    assert flows.pay_sync(world.svc, due, now=lesson.ends_at + timedelta(hours=1)) == "transferred"
    assert [x.amount for x in world.fake.transfers_to(destination(world, t))] == [CREDIT - fee]
    kept = books(world, purchase)  # the fee fixed with the transfer counts, not today's 15 %
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (CREDIT - fee, CREDIT - fee, ())
    # The teacher's earnings page: the transfer is theirs, the rest of the credit the platform's
    # (a fee of half the credit or more: the platform's part is no remainder of the credit).
    line = world.earning(t, lesson.id)
    assert (line.gross, line.refunded, line.net, line.fee, line.settled) == (CREDIT, 0, CREDIT - fee, fee, True)


def test_a_lessons_transfer_reversed_in_part_counts_only_what_is_left(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    assert complete(world, lesson)[lesson.id] == ["completed", "transferred"]
    transfer = payment(world, lesson.id)["transfer"]
    world.fake.reverse_transfer_sync(transfer_id=transfer, amount=1000, idempotency_key="reverse-1000")
    assert world.deliver(world.fake.events[-1]) == "transfer_recorded"  # `transfer.reversed`
    kept = books(world, purchase)
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (SHARE, SHARE - 1000, ())
    # The teacher's earnings page: they keep what is left of the transfer; the platform the rest.
    line = world.earning(t, lesson.id)
    assert (line.gross, line.refunded, line.net, line.fee, line.settled) == (CREDIT, 0, SHARE - 1000, FEE + 1000, True)


def test_a_refund_stripe_has_not_answered_is_in_flight_not_yet_out_of_the_money(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")  # one lesson used: two refunded
    world.fake.fail_next("refund", GatewayError("Stripe is down"))
    with pytest.raises(BadGateway):
        world.run(package_flows.refund_unused(world.svc, user=p[0], purchase_id=purchase, admin=False))
    kept = books(world, purchase)
    assert (kept.money, kept.refunds_in_flight) == (PRICE, 2 * CREDIT)
    world.job("credits")  # sent again, and answered
    kept = books(world, purchase)
    assert (kept.money, kept.refunds_in_flight) == (PRICE - 2 * CREDIT, 0)


def test_a_checkout_naming_a_credit_lesson_is_refused_and_not_counted_in_its_purchases_books(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    # Someone holding the Stripe key makes a checkout naming the lesson and pays it.
    made = utc_now()
    foreign = Session(
        id="cs_foreign", booking_id=str(lesson.id), amount=CREDIT, currency="usd", product_name="Mathematics",
        customer_email=None, expires_at=made + timedelta(hours=1), created=made, destination=None,
        application_fee=None,
    )  # fmt: skip
    world.fake.sessions[foreign.id] = foreign
    assert world.deliver(world.fake.pay(foreign.id)) == "other_checkout"
    kept = books(world, purchase)  # booked, not delivered yet: nothing is due to the teacher
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (0, 0, ())
    assert complete(world, lesson)[lesson.id] == ["completed", "transferred"]
    kept = books(world, purchase)
    assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (SHARE, SHARE, ())
    assert [x.amount for x in world.fake.transfers_to(destination(world, t))] == [SHARE]


def test_a_lesson_leaving_nothing_to_send_does_not_hold_up_the_lessons_after_it(world: World):
    t, p = world.payable_teacher(), world.parent()
    world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    first = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    second = world.book(p, t, starts_at=hours_from_now(7), pay_with="credit")
    world.fake.fail_next("create_transfer", GatewayError("Stripe is down"))
    assert complete(world, first)[first.id] == ["completed", "stripe_unavailable"]
    world.svc.tx_sync(_clear_fee, booking_id=first.id)
    assert world.svc.tx_sync(lesson_payouts.due, fee_percent=100) == []  # the first's fee: all of it
    done = complete(world, second)
    assert first.id not in done and done[second.id] == ["completed", "transferred"]
    assert [x.metadata["booking_id"] for x in world.fake.transfers_to(destination(world, t))] == [str(second.id)]


def test_each_lesson_is_due_from_its_own_purchase_and_counted_in_its_books_alone(world: World):
    p = world.parent()
    teachers = [world.payable_teacher(), world.payable_teacher()]
    bought = [world.buy_package(p, t, lessons=LESSONS, price=PRICE) for t in teachers]
    lessons = [world.book(p, t, starts_at=hours_from_now(5 + 2 * n), pay_with="credit") for n, t in enumerate(teachers)]
    world.fake.fail_next("create_transfer", GatewayError("Stripe is down"), times=3)
    for lesson in lessons:
        complete(world, lesson)
    # Whichever way the purchases' ids sort: each lesson once, funded by its own purchase.
    due = world.svc.tx_sync(lesson_payouts.due, fee_percent=15)
    assert sorted((d.booking_id, d.purchase_id) for d in due) == sorted(
        zip([x.id for x in lessons], bought, strict=True)
    )
    for n, purchase in enumerate(bought):
        kept = books(world, purchase)
        assert (kept.shares, kept.transferred, kept.unpaid_lessons) == (SHARE, 0, (lessons[n].id,))


def test_a_lesson_cancelled_late_uses_its_credit_up_and_pays_its_teacher_nothing(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(5), pay_with="credit")
    world.run(booking_flows.cancel_booking(world.svc, user=p[0], booking_id=lesson.id))  # within 24 h: late
    assert world.view(lesson.id).status == 3  # Cancelled, its credit not given back
    assert lesson.id not in complete(world, lesson)
    assert world.fake.transfers_to(destination(world, t)) == []
    kept = books(world, purchase)  # not delivered: nothing due to the teacher
    assert (kept.money, kept.shares, kept.transferred, kept.unpaid_lessons) == (PRICE, 0, 0, ())
    line = world.earning(t, lesson.id)  # the platform earned the whole credit, and that is final
    assert (line.gross, line.refunded, line.fee, line.net, line.settled) == (CREDIT, 0, CREDIT, 0, True)


def test_a_lesson_cancelled_early_gives_its_credit_back_and_earns_nobody_anything(world: World):
    t, p = world.payable_teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=LESSONS, price=PRICE)
    lesson = world.book(p, t, starts_at=hours_from_now(48), pay_with="credit")
    world.run(booking_flows.cancel_booking(world.svc, user=p[0], booking_id=lesson.id))  # 48 h ahead: given back
    line = world.earning(t, lesson.id)  # the credit counts as refunded: no fee, nothing to the teacher
    assert (line.gross, line.refunded, line.fee, line.net, line.settled) == (CREDIT, CREDIT, 0, 0, True)
    kept = books(world, purchase)
    assert (kept.money, kept.shares, kept.transferred, kept.unpaid_lessons) == (PRICE, 0, 0, ())
