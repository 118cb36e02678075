"""No booking stays Pending for good (issue 32, RELIABILITY §11): whatever Stripe answers about
its checkout (still open, expired by Stripe with the event lost, paid with the event lost, paid
by a delayed method still processing, unknown to Stripe, or Stripe unreachable for a while and
then back), the expire job, run every `job_expire_interval_s` from the booking's creation,
settles it at its first run once the checkout's expiry (the TTL and the one-minute margin) has
passed: within TTL + margin + one interval, and at the first run after Stripe is back. Until
its expiry no run touches it (the parent may still pay). The clock of each run is set here,
from the booking's own creation time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from tests.service.world import World, hours_from_now
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.models import Booking
from tutorbook.bookings.queries import StaleRow
from tutorbook.config import CHECKOUT_MARGIN_MINUTES
from tutorbook.flows.settle import creation_windows
from tutorbook.payments.port import CheckoutNotFound, GatewayError

pytestmark = pytest.mark.service

PENDING, CONFIRMED, CANCELLED = 0, 1, 3
DOWN = ("list_checkouts", "expire_checkout", "retrieve_checkout")


def stripe_down(world: World, *methods: str) -> None:
    """Every call of `methods` fails as Stripe unreachable, until `stripe_back`."""
    for method in methods:
        world.fake.failures[method] = [GatewayError("unreachable")] * 10_000


def stripe_back(world: World) -> None:
    world.fake.failures.clear()


def leave_open(world: World, checkout_id: str) -> None:
    """Stripe still shows the checkout open (its own expiry not acted on yet)."""


def expired_by_stripe(world: World, checkout_id: str) -> None:
    world.fake.expire_at_stripe(checkout_id)  # the checkout.session.expired event is lost


def paid(world: World, checkout_id: str) -> None:
    world.fake.pay(checkout_id)  # the checkout.session.completed event is lost


def processing(world: World, checkout_id: str) -> None:
    world.fake.pay_later(checkout_id)  # a bank debit: complete, not paid yet (its event lost)


def unknown(world: World, checkout_id: str) -> None:
    del world.fake.sessions[checkout_id]  # Stripe does not know it (a test-mode reset, say)


SCENARIOS: dict[str, tuple[Callable[[World, str], None], int, str]] = {
    # what Stripe holds -> (the booking's status once settled, its cancellation reason)
    "open": (leave_open, CANCELLED, "checkout_expired"),
    "expired_at_stripe": (expired_by_stripe, CANCELLED, "checkout_expired"),
    "paid": (paid, CONFIRMED, ""),
    "processing": (processing, CANCELLED, "checkout_expired"),
    "unknown_to_stripe": (unknown, CANCELLED, "checkout_expired"),
}


def runs(world: World, created: datetime) -> list[datetime]:
    """The expire job's runs, one interval apart from the booking's creation, until a while after
    its checkout expired."""
    step = timedelta(seconds=world.settings.job_expire_interval_s)
    ttl = timedelta(minutes=world.settings.checkout_ttl_minutes + CHECKOUT_MARGIN_MINUTES)
    return [created + step * k for k in range(1, int((ttl + 6 * step) / step) + 1)]


def booked(world: World):
    t, p = world.teacher(), world.parent()
    b = world.book(p, t, starts_at=hours_from_now(72))
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    ttl = timedelta(minutes=world.settings.checkout_ttl_minutes + CHECKOUT_MARGIN_MINUTES)
    # The checkout's life: the TTL and the margin (Stripe keeps whole seconds).
    assert timedelta(0) <= ttl - (b.checkout_expires_at - b.created_at) < timedelta(seconds=1)
    return b


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_pending_booking_is_settled_within_its_ttl_and_one_job_interval(world: World, scenario: str):
    b = booked(world)
    at_stripe, status, reason = SCENARIOS[scenario]
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    at_stripe(world, b.stripe_session_id)
    step = timedelta(seconds=world.settings.job_expire_interval_s)
    settled_at = None
    for at in runs(world, b.created_at):
        counts = world.job("expire", at=at).counts()
        now = world.view(b.id)
        if at < b.checkout_expires_at:  # the parent may still pay: nothing touches it
            assert (counts, now.status) == ({}, PENDING), at
        elif settled_at is None:
            assert now.status != PENDING, (at, counts)
            settled_at = at
            assert sum(counts.values()) == 1, counts
        else:
            assert counts == {}, (at, counts)  # settled once
    assert settled_at is not None and settled_at - b.checkout_expires_at < step
    assert settled_at - b.created_at < timedelta(minutes=world.settings.checkout_ttl_minutes) + 2 * step
    done = world.view(b.id)
    assert (done.status, done.cancellation_reason or "") == (status, reason)
    if scenario in ("open", "expired_at_stripe", "processing"):
        assert world.fake.session_of(b.id).status in ("expired", "complete")  # it can take no new payment
    if status == CANCELLED:
        assert world.fake.session_of(b.id).payment_status == "unpaid" if scenario != "unknown_to_stripe" else True


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("down", [DOWN, ("expire_checkout",), ("retrieve_checkout", "expire_checkout")])
def test_stripe_unreachable_leaves_it_pending_and_the_first_run_after_stripe_is_back_settles_it(
    world: World, scenario: str, down: tuple[str, ...]
):
    b = booked(world)
    at_stripe, status, reason = SCENARIOS[scenario]
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    at_stripe(world, b.stripe_session_id)
    due = [at for at in runs(world, b.created_at) if at >= b.checkout_expires_at]
    stripe_down(world, *down)
    for at in due[:3]:  # three runs while Stripe cannot be reached
        counts = world.job("expire", at=at).counts()
        now = world.view(b.id)
        if now.status == PENDING:
            assert counts == {"stripe_unavailable": 1}, counts
        else:  # only when its settling needed none of the calls that fail (e.g. listed expired)
            assert DOWN[0] not in down, (scenario, down, counts)
            break
    stripe_back(world)
    if world.view(b.id).status == PENDING:
        counts = world.job("expire", at=due[3]).counts()
        assert sum(counts.values()) == 1 and world.view(b.id).status != PENDING, counts
    done = world.view(b.id)
    assert (done.status, done.cancellation_reason or "") == (status, reason)
    assert world.job("expire", at=due[4]).counts() == {}


def test_a_checkout_paid_while_the_job_expires_it_is_confirmed_not_cancelled(world: World):
    """Paid between the listing (open) and the expire call: Stripe refuses to expire it, the job
    re-reads it and fulfils the payment."""
    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    real = world.fake.expire_checkout_sync

    def pay_first(checkout_id: str, *, reason: str) -> Checkout:
        world.fake.pay(checkout_id)
        return real(checkout_id, reason=reason)

    world.fake.expire_checkout_sync = pay_first  # type: ignore[method-assign]
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"confirmed": 1}
    assert world.view(b.id).status == CONFIRMED
    assert world.fake.refunds == []


def test_stripe_not_knowing_the_checkout_cancels_it_nothing_can_be_paid(world: World):
    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    world.fake.fail_next("expire_checkout", CheckoutNotFound("gone"))
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"checkout_expired": 1}
    assert world.view(b.id).status == CANCELLED


@pytest.mark.parametrize("skew_minutes", [-4.5, 4.5])
def test_a_checkout_stripe_dates_minutes_off_is_still_found_in_its_listing(world: World, skew_minutes: float):
    """Stripe's clock and ours may differ by up to flows.settle.CLOCK_MARGIN (5 minutes): a session
    dated 4.5 minutes before or after its booking is in the listing, so an expired one is cancelled
    without a call about it alone (no expire, no re-read)."""
    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    session = world.fake.sessions[b.stripe_session_id]
    session.created = b.created_at + timedelta(minutes=skew_minutes)
    world.fake.expire_at_stripe(b.stripe_session_id)  # its event lost
    world.fake.calls.clear()
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"checkout_expired": 1}
    assert world.fake.called("expire_checkout") == [] and world.fake.called("retrieve_checkout") == []


def test_a_paid_batch_whose_transaction_fails_is_fulfilled_one_by_one(world: World, monkeypatch: pytest.MonkeyPatch):
    from tutorbook.flows import settle

    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    world.fake.pay(b.stripe_session_id)  # its event lost

    def broken(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("the batch's transaction failed")

    monkeypatch.setattr(settle, "_fulfil_many", broken)
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"confirmed": 1}
    assert world.view(b.id).status == CONFIRMED and world.fake.refunds == []


@pytest.mark.parametrize("off", ["before", "after"])
def test_a_checkout_stripe_dates_beyond_the_clock_margin_is_not_listed_and_settled_alone(world: World, off: str):
    """flows.settle.CLOCK_MARGIN is 5 minutes: a session dated 5.5 minutes before its booking, or
    5.5 minutes after the booking request's longest life (unopened_grace), is outside the listed
    window, so it takes the per-row path (expire, refused as not open, re-read) and is still
    cancelled."""
    from tutorbook.jobs.tasks import unopened_grace

    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    margin = timedelta(minutes=5, seconds=30)
    skew = -margin if off == "before" else unopened_grace(world.settings) + margin
    world.fake.sessions[b.stripe_session_id].created = b.created_at + skew
    world.fake.expire_at_stripe(b.stripe_session_id)  # its event lost
    world.fake.calls.clear()
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"checkout_expired": 1}
    assert world.view(b.id).status == CANCELLED
    assert [c["checkout_id"] for c in world.fake.called("expire_checkout")] == [b.stripe_session_id]


def test_an_unexpected_error_expiring_one_checkout_is_recorded_and_the_others_are_settled(world: World):
    """Not a Stripe error (a bug, say): that booking is an "error" and stays Pending, the run goes
    on with the others, and the next run settles it."""
    first, second = booked(world), booked(world)
    assert first.checkout_expires_at is not None and second.checkout_expires_at is not None
    at = max(first.checkout_expires_at, second.checkout_expires_at)
    world.fake.fail_next("expire_checkout", RuntimeError("a bug"))
    assert world.job("expire", at=at).counts() == {"checkout_expired": 1, "error": 1}
    assert sorted(world.view(b.id).status for b in (first, second)) == [PENDING, CANCELLED]
    assert world.job("expire", at=at + timedelta(minutes=1)).counts() == {"checkout_expired": 1}
    assert {world.view(b.id).status for b in (first, second)} == {CANCELLED}


def test_a_cancel_batch_whose_transaction_fails_records_each_booking_as_an_error_and_leaves_it_pending(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    from tutorbook.flows import settle

    first, second = booked(world), booked(world)
    assert first.checkout_expires_at is not None and second.checkout_expires_at is not None
    for b in (first, second):
        assert b.stripe_session_id is not None
        world.fake.expire_at_stripe(b.stripe_session_id)  # its event lost: listed expired
    at = max(first.checkout_expires_at, second.checkout_expires_at)

    def broken(*args: object, **kwargs: object) -> set[object]:
        raise RuntimeError("the batch's transaction failed")

    with monkeypatch.context() as patched:
        patched.setattr(settle._Settlement, "_cancel_pending", broken)
        assert world.job("expire", at=at).counts() == {"error": 2}
    assert {world.view(b.id).status for b in (first, second)} == {PENDING}
    assert world.job("expire", at=at + timedelta(minutes=1)).counts() == {"checkout_expired": 2}
    assert {world.view(b.id).status for b in (first, second)} == {CANCELLED}


def test_failed_listings_are_logged_with_how_many_of_how_many_failed(world: World, caplog: pytest.LogCaptureFixture):
    """Two bookings two days apart: two creation windows, each listed for three statuses."""
    early = booked(world)
    late = booked(world)
    assert early.checkout_expires_at is not None and late.checkout_expires_at is not None

    def made_earlier(session: Session) -> None:  # our record says it was made two days before
        booking = session.get(Booking, early.id)
        assert booking is not None
        booking.created_at = late.created_at - timedelta(days=2)

    world.svc.tx_sync(made_earlier)
    stripe_down(world, *DOWN)
    with caplog.at_level(logging.WARNING, logger="tutorbook.flows"):
        assert world.job("expire", at=late.checkout_expires_at).counts() == {"stripe_unavailable": 2}
    (record,) = [r for r in caplog.records if r.getMessage().startswith("listing stale checkouts failed")]
    assert (record.failed, record.listings) == (6, 6)  # type: ignore[attr-defined]


def test_listing_windows_are_cut_every_per_window_times_never_inside_one_second():
    def at(second: int) -> datetime:
        return datetime(2031, 1, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=second)

    second = timedelta(seconds=1)  # one second before and after each: all in one stretch
    assert creation_windows([at(s) for s in range(9)], per_window=3, before=second, after=second) == [
        (at(-1), at(2)),
        (at(3), at(5)),
        (at(6), at(9)),
    ]
    # the third time shares the second's second: the cut waits for the next second
    assert creation_windows([at(0), at(1), at(1), at(2)], per_window=2, before=second, after=second) == [
        (at(-1), at(1)),
        (at(2), at(3)),
    ]


def test_times_exactly_the_margins_apart_share_one_listing_window_never_two_overlapping_ones():
    def at(minute: int) -> datetime:
        return datetime(2031, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=minute)

    before, after = timedelta(minutes=5), timedelta(minutes=10)
    # 15 minutes apart: the first one's window would end at the very second the second one's starts
    assert creation_windows([at(0), at(15)], per_window=1000, before=before, after=after) == [(at(-5), at(25))]
    # a second more: two windows, the second starting a second after the first one ends
    assert creation_windows([at(0), at(15) + timedelta(seconds=1)], per_window=1000, before=before, after=after) == [
        (at(-5), at(10)),
        (at(10) + timedelta(seconds=1), at(25) + timedelta(seconds=1)),
    ]


def test_a_paid_batch_whose_cancel_of_the_refused_fails_keeps_its_confirmations(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    """The batch's fulfilment committed; the cancel of any booking still Pending after it (a
    refused payment) fails: the confirmations stand as recorded, not fulfilled again one by one."""
    from tutorbook.flows import booking as booking_flows
    from tutorbook.flows import settle

    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    world.fake.pay(b.stripe_session_id)  # its event lost

    def broken(*args: object, **kwargs: object) -> set[object]:
        raise RuntimeError("the cancel's transaction failed")

    again: list[object] = []

    def one_by_one(*args: object, **kwargs: object) -> str:
        again.append(kwargs["booking_id"])
        return "fulfilled again"

    monkeypatch.setattr(settle._Settlement, "_cancel_pending", broken)
    monkeypatch.setattr(booking_flows, "fulfil_stale", one_by_one)
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"confirmed": 1}
    assert again == [] and world.view(b.id).status == CONFIRMED and world.fake.refunds == []


def test_every_booking_no_listing_showed_is_settled_alone_whichever_comes_after_a_listed_one(world: World):
    """The stale rows in the order given: a listed booking first, then one whose session is dated
    beyond the clock margin (no listing shows it): both are settled, the second by the per-row path."""
    from tutorbook.flows.settle import settle_stale_checkouts
    from tutorbook.jobs.result import JobResult
    from tutorbook.jobs.tasks import unopened_grace

    listed, unlisted = booked(world), booked(world)
    for b in (listed, unlisted):
        assert b.stripe_session_id is not None
        world.fake.expire_at_stripe(b.stripe_session_id)  # its event lost
    assert unlisted.stripe_session_id is not None and listed.stripe_session_id is not None
    assert listed.checkout_expires_at is not None and unlisted.checkout_expires_at is not None
    world.fake.sessions[unlisted.stripe_session_id].created = unlisted.created_at - timedelta(minutes=6)
    world.fake.calls.clear()
    out = JobResult("expire")
    stale = [StaleRow(b.id, b.stripe_session_id, b.created_at) for b in (listed, unlisted)]
    at = max(listed.checkout_expires_at, unlisted.checkout_expires_at)
    settle_stale_checkouts(
        world.svc, stale, now=at, dry_run=False, out=out, created_within=unopened_grace(world.settings)
    )
    assert {i.booking_id: i.outcome for i in out.items} == {
        listed.id: "checkout_expired",
        unlisted.id: "checkout_expired",
    }
    assert [c["checkout_id"] for c in world.fake.called("expire_checkout")] == [unlisted.stripe_session_id]
    assert {world.view(b.id).status for b in (listed, unlisted)} == {CANCELLED}


def test_a_listing_settles_a_stale_booking_listed_after_a_session_of_no_stale_booking(world: World):
    """Stripe lists the newest first: a session no stale booking has (another app's on the same
    account, say), made a minute after the booking's, comes before it; the booking is still settled
    from the listing (no call about it alone)."""
    from dataclasses import replace

    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    world.fake.expire_at_stripe(b.stripe_session_id)  # its event lost
    own = world.fake.sessions[b.stripe_session_id]
    foreign = replace(own, id="cs_foreign", booking_id="another", created=own.created + timedelta(minutes=1))
    world.fake.sessions[foreign.id] = foreign
    world.fake.calls.clear()
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"checkout_expired": 1}
    assert world.fake.called("expire_checkout") == [] and world.fake.called("retrieve_checkout") == []
    assert world.view(b.id).status == CANCELLED


def test_a_stale_payment_in_another_currency_is_refunded_by_the_job_and_its_booking_cancelled(world: World):
    """Paid with its event lost, in a currency the booking is not priced in: the batch refuses it,
    the refund is sent with the batch's follow-ups (before the job returns), and the booking, still
    Pending, is cancelled as an unpaid one."""
    b = booked(world)
    assert b.stripe_session_id is not None and b.checkout_expires_at is not None
    own = world.fake.sessions[b.stripe_session_id]
    own.currency = "eur" if b.currency != "eur" else "usd"  # the same minor units, another currency
    world.fake.pay(own.id)  # its event lost
    assert world.job("expire", at=b.checkout_expires_at).counts() == {"currency_mismatch, checkout_expired": 1}
    done = world.view(b.id)
    assert (done.status, done.cancellation_reason) == (CANCELLED, "checkout_expired")
    assert world.refunds(b.id) == [(b.price_amount, "succeeded")]
