"""Stripe's events as the webhook handles them (payments/webhooks.py), without HTTP. A package's
checkout that expires at Stripe gives its open purchase up as expired, a delayed payment that
fails as withdrawn, once; nothing reaches the wallet; a later event about it changes nothing. A
checkout Tutorbook did not make (no metadata) is no booking's and no package's; a
`charge.refunded` that does not say how much was refunded lowers and raises nothing."""

from __future__ import annotations

from typing import Any, cast

import pytest

from tests.series import steps
from tests.service.world import World, hours_from_now
from tutorbook.clock import utc_now
from tutorbook.credits import service as wallet_service

pytestmark = pytest.mark.service
PENDING = 0


def total_credits(world: World, parent) -> int:
    return world.svc.tx_sync(wallet_service.credits_of, parent_id=parent[0].id, now=utc_now()).total


def test_a_package_checkout_expired_at_stripe_gives_the_purchase_up_as_expired_once(world: World):
    t, p = world.teacher(), world.parent()
    purchase = world.buy_package(p, t, pay=False)
    checkout = world.fake.session_of(purchase)
    assert world.purchase_state(purchase) == "open"
    assert world.deliver(world.fake.expire_at_stripe(checkout.id)) == "purchase_given_up"
    assert world.purchase_state(purchase) == "expired"
    again = world.fake._emit("checkout.session.expired", checkout.as_json())  # another event, same news
    assert world.deliver(again) == "no_change"
    assert world.purchase_state(purchase) == "expired" and total_credits(world, p) == 0


def test_a_package_paid_by_a_delayed_method_that_fails_is_withdrawn_and_adds_nothing(world: World):
    t, p = world.teacher(), world.parent()
    purchase = world.buy_package(p, t, pay=False)
    checkout = world.fake.session_of(purchase)
    assert world.deliver(world.fake.pay_later(checkout.id)) == "awaiting_payment"
    assert world.deliver(world.fake.fail_async(checkout.id)) == "purchase_given_up"
    assert world.purchase_state(purchase) == "withdrawn"  # not "expired": Stripe failed it
    assert total_credits(world, p) == 0


def test_a_package_checkout_paid_adds_its_credits_and_the_event_again_changes_nothing(world: World):
    t, p = world.teacher(), world.parent()
    purchase = world.buy_package(p, t, lessons=4, price=20000, pay=False)
    checkout = world.fake.session_of(purchase)
    assert world.deliver(world.fake.pay(checkout.id)) == "credits_added"
    assert world.purchase_state(purchase) == "paid" and total_credits(world, p) == 4
    again = world.fake._emit("checkout.session.completed", world.fake.sessions[checkout.id].as_json())
    assert world.deliver(again) == "already_fulfilled"
    assert total_credits(world, p) == 4


def test_an_expired_checkout_tutorbook_did_not_make_is_no_bookings_and_no_packages(world: World):
    foreign: dict[str, Any] = {
        "id": "cs_test_foreign", "object": "checkout.session", "mode": "payment", "status": "expired",
        "payment_status": "unpaid", "url": None, "payment_intent": None, "amount_total": 6000,
        "currency": "usd", "client_reference_id": None, "metadata": {},
        "expires_at": 1_900_000_000, "created": 1_800_000_000,
    }  # fmt: skip
    assert world.deliver(world.fake._emit("checkout.session.expired", foreign)) == "unknown_booking"
    assert world.deliver(world.fake._emit("checkout.session.async_payment_failed", foreign)) == "unknown_booking"


def test_a_charge_refunded_event_that_does_not_say_how_much_changes_nothing(world: World):
    paid = world.book_and_pay(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    charge = {"id": "ch_x", "object": "charge", "payment_intent": paid.stripe_payment_intent_id}
    assert world.deliver(world.fake._emit("charge.refunded", charge)) == "refund_recorded"
    assert world.view(paid.id).refunded_amount == 0


@pytest.mark.parametrize("name", ["postgresql", "sqlite"])
def test_the_event_id_is_recorded_once_by_each_databases_own_insert_or_nothing(name: str):
    # The service tier runs on SQLite alone in the mutation runs: PostgreSQL's statement is
    # compiled here by its own dialect, as the webhook's session would.
    import sqlalchemy as sa

    from tutorbook.payments import webhooks

    dialect = sa.create_engine("postgresql+psycopg://" if name == "postgresql" else "sqlite://").dialect
    sql = str(webhooks._RECORD[name].compile(dialect=dialect))
    assert "ON CONFLICT (id) DO NOTHING" in sql and "RETURNING" in sql


@pytest.mark.parametrize("newer_first", [False, True])
def test_each_events_outcome_is_kept_on_its_own_record(world: World, newer_first: bool):
    # Stripe delivers in no particular order: an event recorded after a newer one (whose id sorts
    # after its own) still writes its outcome on its own row alone.
    import sqlalchemy as sa

    from tutorbook.payments.models import StripeEvent

    paid = world.book(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    assert paid.stripe_session_id is not None
    first = world.fake.pay(paid.stripe_session_id)
    second = world.fake._emit("charge.refunded", {"id": "ch_x", "object": "charge", "payment_intent": "pi_none"})
    assert first["id"] < second["id"]
    if newer_first:
        assert [world.deliver(second), world.deliver(first)] == ["unknown_booking", "confirmed"]
    else:
        assert [world.deliver(first), world.deliver(second)] == ["confirmed", "unknown_booking"]
    outcomes = dict(
        world.svc.tx_sync(lambda s: s.execute(sa.select(StripeEvent.id, StripeEvent.outcome)).tuples().all())
    )
    assert (outcomes[first["id"]], outcomes[second["id"]]) == ("confirmed", "unknown_booking")


def test_the_batch_of_ignored_events_names_its_columns_without_types_as_postgresql_requires():
    # `unnest` of two arrays returns a set of known types: PostgreSQL refuses a column definition
    # list after it ("only allowed for functions returning record"), so the batch's one INSERT
    # (record_ignored_many, PostgreSQL only; run there by tests/payments/test_webhooks.py) names
    # the derived columns alone. Compiled here by PostgreSQL's dialect, as the service tier runs
    # on SQLite alone in the mutation runs.
    import sqlalchemy as sa

    from tutorbook.payments import webhooks

    sql = str(webhooks._RECORD_MANY.compile(dialect=sa.create_engine("postgresql+psycopg://").dialect))
    assert "unnest(" in sql and "AS rows(id, type) ON CONFLICT (id) DO NOTHING RETURNING" in sql, sql


def test_a_batch_of_ignored_events_answers_each_in_order_ignored_once_then_duplicate():
    # The batch's statement returns the ids that were new; each event of the batch, in order, is
    # `ignored` the first time its id is new and `duplicate` after (a repeat within the batch, or an
    # id recorded before), as one request after another would be. The statement's own run on
    # PostgreSQL is tests/payments/test_webhooks.py's; this is the answer built from what it returns.
    import asyncio

    from tutorbook.payments import webhooks

    class Returned:
        def __init__(self, ids: list[str]) -> None:
            self.ids = ids

        def scalars(self) -> list[str]:
            return self.ids

    class Connection:  # what the batch's AsyncConnection is asked: one execute
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        async def execute(self, statement: Any, params: dict[str, Any]) -> Returned:
            assert statement is webhooks._RECORD_MANY
            self.calls.append(params)
            return Returned(["evt_new", "evt_other"])  # evt_seen was recorded before

    conn = Connection()
    events = [
        {"id": "evt_new", "type": "invoice.paid"},
        {"id": "evt_seen", "type": "customer.created"},
        {"id": "evt_new", "type": "invoice.paid"},
        {"id": "evt_other"},
    ]
    outcomes = asyncio.run(webhooks.record_ignored_many(conn, events, now=utc_now()))  # type: ignore[arg-type]
    assert [o.kind for o in outcomes] == ["ignored", "duplicate", "duplicate", "ignored"]
    [params] = conn.calls
    assert params["ids"] == ["evt_new", "evt_seen", "evt_new", "evt_other"]
    assert params["types"] == ["invoice.paid", "customer.created", "invoice.paid", "?"]


@pytest.mark.parametrize("wrong", [10, 11, 14])
def test_a_malformed_event_is_refused_naming_at_most_ten_of_its_problems(wrong: int):
    # The 400's `data` lists the fields at fault, the first ten of them: enough to see what is
    # wrong, and a hostile body cannot make the answer (and the log line) as long as itself.
    from tutorbook.payments import webhooks

    metadata = {f"key{i:02d}": ["not", "text"] for i in range(wrong)}
    event = {
        "id": "evt_malformed",
        "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_malformed", "metadata": metadata}},
    }
    with pytest.raises(webhooks.MalformedEvent) as refused:
        webhooks.check_shape(event)
    problems = refused.value.data
    assert isinstance(problems, list)
    assert [p["field"] for p in problems] == [f"data.metadata.key{i:02d}" for i in range(min(wrong, 10))]


def test_a_series_lessons_pay_link_checkout_expiring_at_stripe_leaves_the_lesson_pending(world: World):
    # Week 2 of a card series: its off-session charge declined, the parent opens the emailed pay
    # link and leaves that checkout to expire at Stripe. The lesson keeps its time until its own
    # deadline (the series job's), so the expiry changes nothing; a plain booking's expiry would
    # cancel it.
    t, p = world.payable_teacher(), world.parent()
    weeks, pay_link = steps.declined_week_with_pay_link(world, p, t, weeks=3)
    assert world.deliver(world.fake.expire_at_stripe(pay_link)) == "no_change"
    assert world.view(weeks[2].booking_id).status == PENDING


def test_a_checkout_expiry_that_loses_the_race_to_its_payment_changes_nothing(world: World, monkeypatch):
    # `checkout.session.expired` reads the booking Pending; before its cancel's compare-and-set the
    # booking's payment is confirmed by another writer (the success page, a job). The payment wins:
    # the event changes nothing (`no_change`, not an error Stripe would retry), the booking stays
    # Confirmed.
    import sqlalchemy as sa

    from tutorbook.bookings import lookup
    from tutorbook.bookings.models import Booking

    booked = world.book(world.parent(), world.teacher(rate=6000), starts_at=hours_from_now(48))
    assert booked.stripe_session_id is not None
    read = lookup.by_checkout

    def read_then_paid_elsewhere(session, checkout, **kw):
        booking = read(session, checkout, **kw)
        assert booking is not None and booking.status == PENDING
        table = cast(sa.Table, Booking.__table__)  # Core, so the ORM's copy keeps its Pending
        session.connection().execute(sa.update(table).where(table.c.id == booking.id).values(status=1))
        return booking  # as read: Pending

    monkeypatch.setattr(lookup, "by_checkout", read_then_paid_elsewhere)
    assert world.deliver(world.fake.expire_at_stripe(booked.stripe_session_id)) == "no_change"
    monkeypatch.undo()
    assert world.view(booked.id).status == 1  # Confirmed, not cancelled


def test_account_events_are_applied_by_the_time_stripe_made_them_not_the_order_they_arrive(world: World):
    # Stripe's account.updated events carry `created`: the newer state is kept whichever arrives
    # first, an older one arriving after it is `stale` and changes nothing.
    from tutorbook.flows import payouts as payout_flows
    from tutorbook.teachers import payouts

    t = world.teacher()
    world.run(payout_flows.onboard(world.svc, teacher=t))
    account = world.svc.tx_sync(payouts.account_id, teacher_id=t.id)
    assert account is not None
    newer = world.fake.enable_account(account)
    older = world.fake._emit("account.updated", {**newer["data"]["object"], "charges_enabled": False})
    newer["created"] = older["created"] = 4_070_908_800  # 2099: after the state held since onboarding
    newer["created"] += 60
    assert world.deliver(newer) == "account_updated"
    assert world.deliver(older) == "account_stale"
    held = world.svc.tx_sync(payouts.status, teacher_id=t.id)
    assert held.charges_enabled and held.payouts_enabled, held


def test_a_package_checkout_the_parent_cancelled_is_withdrawn_even_when_its_event_comes_first(world: World):
    # The cancel expires the checkout at Stripe (the reason in its idempotency key), then gives the
    # purchase up as withdrawn; Stripe's `checkout.session.expired` may overtake that second step.
    # Either way the purchase is withdrawn (the parent's choice), not expired (Stripe's clock).
    t, p = world.teacher(), world.parent()
    purchase = world.buy_package(p, t, pay=False)
    checkout = world.fake.session_of(purchase)
    world.fake.expire_checkout_sync(checkout.id, reason="payment_cancelled")  # the cancel's first step
    assert world.deliver(world.fake.events[-1]) == "purchase_given_up"
    assert world.purchase_state(purchase) == "withdrawn"
    assert total_credits(world, p) == 0
