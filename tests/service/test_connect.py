"""A teacher paid through Stripe Connect: a destination charge with the platform's fee; a refund
takes the teacher's share back and returns the fee in proportion; the earnings page shows it."""

from __future__ import annotations

import pytest

from tests.service.world import World, hours_from_now
from tutorbook.flows import booking as flows

pytestmark = pytest.mark.service


def test_a_payable_teachers_booking_is_a_destination_charge_with_the_platform_fee(world: World):
    t, p = world.payable_teacher(rate=6000), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    checkout = world.fake.session_of(paid.id)
    assert checkout.destination is not None and checkout.destination.startswith("acct_")
    fee = round(6000 * world.settings.platform_fee_percent / 100)
    assert checkout.application_fee == fee
    line = world.earning(t, paid.id)
    assert (line.gross, line.refunded, line.fee, line.net, line.paid_out, line.settled) == (
        6000, 0, fee, 6000 - fee, True, True
    )  # fmt: skip


def test_a_full_refund_of_a_destination_charge_takes_back_the_transfer_and_returns_the_fee(world: World):
    t, p = world.payable_teacher(rate=6000), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(48))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    [sent] = world.fake.called("refund")
    assert (sent["amount"], sent["connect"], sent["with_fee"]) == (6000, True, True)
    payment = world.fake.payments[str(paid.stripe_payment_intent_id)]
    assert (payment.refunded, payment.transfer_reversed, payment.fee_refunded) == (6000, 6000, payment.fee_amount)
    line = world.earning(t, paid.id)
    assert (line.refunded, line.fee, line.net) == (6000, 0, 0)


def test_a_partial_refund_of_a_destination_charge_takes_back_shares_in_proportion(world: World):
    t, p = world.payable_teacher(rate=6000, late_refund_percent=50), world.parent()
    paid = world.book_and_pay(p, t, starts_at=hours_from_now(5))
    world.run(flows.cancel_booking(world.svc, user=p[0], booking_id=paid.id))
    payment = world.fake.payments[str(paid.stripe_payment_intent_id)]
    assert (payment.refunded, payment.transfer_reversed, payment.fee_refunded) == (3000, 3000, payment.fee_amount // 2)
    line = world.earning(t, paid.id)
    assert (line.refunded, line.fee, line.net) == (3000, payment.fee_amount // 2, 3000 - payment.fee_amount // 2)
