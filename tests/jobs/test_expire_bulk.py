"""The expire job settles stale checkouts in bulk from Stripe's lists (flows/settle.py): paid ones
fulfilled, expired ones cancelled, and only those Stripe still reports open expired at Stripe, in
parallel within TUTORBOOK_JOB_STRIPE_CONCURRENCY. Against the sandbox, through the real SDK."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests import factories as f
from tests.jobs.helpers import booked, later, paid_at_stripe, row, run, set_columns, webhooks_off
from tests.support import payments as pay
from tests.support.servers import http_post
from tutorbook.bookings import lifecycle, records
from tutorbook.bookings import repository as repo
from tutorbook.bookings.models import Booking
from tutorbook.clock import utc_now
from tutorbook.flows import booking as booking_flows
from tutorbook.flows.settle import creation_windows
from tutorbook.payments import gateway as gw

PRICE = 6000  # the factories' teacher: 60.00 an hour, one-hour sessions


class Spy:
    """Counts the gateway's expire and retrieve calls (and how many expires were in flight at
    once), still made through the real SDK; fails the test if a booking takes the per-row path."""

    def __init__(self, monkeypatch, gateway, *, hold_s: float = 0.0):
        self.expired: list[str] = []
        self.retrieved: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        expire, retrieve = gateway.expire_checkout_sync, gateway.retrieve_checkout_sync

        def counted_expire(checkout_id, **kwargs):
            with self._lock:
                self.expired.append(checkout_id)
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                time.sleep(hold_s)
                return expire(checkout_id, **kwargs)
            finally:
                with self._lock:
                    self.in_flight -= 1

        def counted_retrieve(checkout_id):
            with self._lock:
                self.retrieved.append(checkout_id)
            return retrieve(checkout_id)

        def per_row(*args, **kwargs):
            raise AssertionError(f"a booking took the per-row path: {kwargs.get('checkout_id')}")

        monkeypatch.setattr(gateway, "expire_checkout_sync", counted_expire)
        monkeypatch.setattr(gateway, "retrieve_checkout_sync", counted_retrieve)
        monkeypatch.setattr(booking_flows, "settle_stale_checkout", per_row)


def outcomes(result) -> dict[str, str]:
    return {str(i.booking_id): i.outcome for i in result.items}


def test_only_checkouts_stripe_still_reports_open_are_expired_and_each_booking_is_settled(api, c, sandbox, monkeypatch):
    webhooks_off(sandbox)
    t = f.teacher(c)
    still_open = booked(c, teacher=t, days=2)["b"]
    expired = booked(c, teacher=t, days=3)["b"]
    paid = paid_at_stripe(c, teacher=t, days=4)["b"]
    mismatched = booked(c, teacher=t, days=5)["b"]
    cs = pay.other_checkout(sandbox, booking_id=mismatched["id"], amount=100)
    # its checkout, wrongly priced
    set_columns(api, mismatched["id"], stripe_session_id=cs["id"], checkout_url=cs["url"])
    assert pay.pay(cs["url"]).status_code == 303
    http_post(
        f"{sandbox.base_url}/v1/checkout/sessions/{expired['stripeSessionId']}/expire",
        headers={"Authorization": "Bearer sk_test_sandbox"},
    ).raise_for_status()  # Stripe expired it itself; the webhook was lost
    spy = Spy(monkeypatch, api.state.services.gateway)

    result = run(api, "expire", now=later())

    assert outcomes(result) == {
        still_open["id"]: "checkout_expired",
        expired["id"]: "checkout_expired",
        paid["id"]: "confirmed",
        mismatched["id"]: "amount_mismatch, checkout_expired",
    }
    assert spy.expired == [still_open["stripeSessionId"]] and spy.retrieved == []  # the lists said the rest
    assert pay.sandbox_session(sandbox, still_open["stripeSessionId"])["status"] == "expired"
    (event,) = [
        e
        for e in pay.sandbox_events(sandbox, "checkout.session.expired")
        if e["data"]["object"]["id"] == still_open["stripeSessionId"]
    ]
    assert gw.expiry_reason(event) == "checkout_expired"  # the job's reason travels in the idempotency key
    assert row(api, paid["id"]).status == 1 and row(api, paid["id"]).meeting_url
    for b in (still_open, expired, mismatched):
        assert (row(api, b["id"]).status, row(api, b["id"]).cancellation_reason) == (3, "checkout_expired")
    assert pay.refunded_at_stripe(sandbox, pay.sandbox_session(sandbox, cs["id"])["payment_intent"]) == 100
    assert pay.history(api.state.db, paid["id"]) == [(None, 0, "booked"), (0, 1, "paid")]
    assert pay.history(api.state.db, expired["id"])[-1] == (0, 3, "checkout_expired")
    with api.state.db.session_scope() as s:
        assert repo.history(s, uuid.UUID(expired["id"]))[-1].actor == "job:expire"


def _stale_with_seeded_sessions(api, c, sandbox, states: list[str]) -> list[tuple[str, str, str]]:
    """Pending bookings made a minute ago, one per state, whose Checkout Sessions the sandbox
    holds as `open`, `expired` or `paid` (seeded, not made one by one): [(booking id, session id,
    state)]. By `later()` each booking's checkout has expired by our clock."""
    t, p = f.teacher(c), f.parent(c)
    created = utc_now() - timedelta(minutes=1)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    ids = [uuid.uuid4() for _ in states]
    sandbox_now = int(time.time())
    specs = [
        {
            "created": int(created.timestamp()),
            "expires_at": sandbox_now + 3600 if state == "open" else int(created.timestamp()) + 1800,
            "amount": PRICE,
            "currency": "usd",
            "state": state,
            "metadata": {"booking_id": str(booking_id), "type": "session-booking"},
            "client_reference_id": str(booking_id),
        }
        for booking_id, state in zip(ids, states, strict=True)
    ]
    r = http_post(f"{sandbox.base_url}/_sandbox/checkout-sessions", json={"sessions": specs}, timeout=60)
    r.raise_for_status()
    sessions = r.json()["ids"]
    with api.state.db.session_scope() as s:
        for k, (booking_id, session_id) in enumerate(zip(ids, sessions, strict=True)):
            booking = Booking(
                id=booking_id,
                parent_id=uuid.UUID(p["user"]["id"]),
                student_id=uuid.UUID(p["students"][0]),
                teacher_id=uuid.UUID(t["user"]["id"]),
                subject="Mathematics",
                starts_at=start + timedelta(hours=k),
                ends_at=start + timedelta(hours=k + 1),
                price_amount=PRICE,
                currency="usd",
                updated_at=created,
            )
            repo.insert(s, booking, lifecycle.book(now=created), actor="test")
            records.open_payment(
                s,
                booking,
                now=created,
                stripe_checkout_id=session_id,
                checkout_url=f"{sandbox.base_url}/c/pay/{session_id}",
                checkout_expires_at=created + timedelta(minutes=31),
            )
    return [(str(b), cs, state) for b, cs, state in zip(ids, sessions, states, strict=True)]


def test_lists_longer_than_a_page_are_followed_page_by_page(api, c, sandbox, monkeypatch):
    webhooks_off(sandbox)
    rows = _stale_with_seeded_sessions(api, c, sandbox, ["open"] * 130 + ["expired"] * 120 + ["paid"] * 3)
    spy = Spy(monkeypatch, api.state.services.gateway)

    result = run(api, "expire", now=later())

    expected = {"open": "checkout_expired", "expired": "checkout_expired", "paid": "confirmed"}
    assert outcomes(result) == {b: expected[state] for b, _, state in rows}  # none took the per-row path
    assert sorted(spy.expired) == sorted(cs for _, cs, state in rows if state == "open")
    assert Counter(row(api, b).status for b, _, _ in rows) == {3: 250, 1: 3}
    assert {pay.sandbox_session(sandbox, cs)["status"] for _, cs, state in rows if state == "open"} == {"expired"}


def test_expiring_runs_in_parallel_within_the_configured_bound(api, c, sandbox, monkeypatch):
    webhooks_off(sandbox)
    rows = _stale_with_seeded_sessions(api, c, sandbox, ["open"] * 12)
    monkeypatch.setattr(api.state.services.settings, "job_stripe_concurrency", 4)
    spy = Spy(monkeypatch, api.state.services.gateway, hold_s=0.1)

    result = run(api, "expire", now=later())

    assert set(outcomes(result).values()) == {"checkout_expired"} and len(result.items) == 12
    assert len(spy.expired) == 12 and spy.most_in_flight == 4  # one at a time before; never more than 4
    assert {b for b, _, _ in rows} == set(outcomes(result))


def test_a_checkout_paid_between_listing_and_expiring_is_fulfilled_never_cancelled(api, c, sandbox, monkeypatch):
    webhooks_off(sandbox)
    t = f.teacher(c)
    paid_late = booked(c, teacher=t, days=2)
    confirmed_meanwhile = booked(c, teacher=t, days=3)
    gateway = api.state.services.gateway
    expire = gateway.expire_checkout_sync
    paid = threading.Event()

    def pay_then_expire(checkout_id, **kwargs):
        if not paid.is_set():  # both were listed as open; both are paid before the job expires them
            paid.set()
            for x in (paid_late, confirmed_meanwhile):
                assert pay.pay(x["b"]["checkoutUrl"]).status_code == 303
            r = confirmed_meanwhile["p"]["client"].post(
                f"/api/Sessions/confirm-payment/{confirmed_meanwhile['b']['stripeSessionId']}"
            )
            assert r.json()["data"]["status"] == 1, r.text  # the success page confirmed it first
        return expire(checkout_id, **kwargs)

    monkeypatch.setattr(api.state.services.settings, "job_stripe_concurrency", 1)  # one expire after the other
    monkeypatch.setattr(gateway, "expire_checkout_sync", pay_then_expire)
    spy = Spy(monkeypatch, gateway)

    result = run(api, "expire", now=later())

    assert outcomes(result) == {paid_late["b"]["id"]: "confirmed", confirmed_meanwhile["b"]["id"]: "already_fulfilled"}
    assert len(spy.expired) == 2 and len(spy.retrieved) == 2  # refused as no longer open, so re-read
    for x in (paid_late, confirmed_meanwhile):
        assert row(api, x["b"]["id"]).status == 1
        assert [h for h in pay.history(api.state.db, x["b"]["id"]) if h[1] == 3] == []  # never cancelled


@pytest.mark.parametrize("failure", [gw.GatewayError("Stripe did not answer"), RuntimeError("a bug")])
def test_a_failed_listing_leaves_its_bookings_pending_and_settles_the_rest(api, c, sandbox, monkeypatch, failure):
    webhooks_off(sandbox)
    rows = _stale_with_seeded_sessions(api, c, sandbox, ["open", "expired"])
    gateway = api.state.services.gateway
    listing = gateway.list_checkouts_sync

    def expired_list_fails(**kwargs):
        if kwargs.get("status") == "expired":
            raise failure
        return listing(**kwargs)

    monkeypatch.setattr(gateway, "list_checkouts_sync", expired_list_fails)
    spy = Spy(monkeypatch, gateway)

    result = run(api, "expire", now=later())

    (opened, _, _), (expired, expired_cs, _) = rows
    assert outcomes(result) == {opened: "checkout_expired", expired: "stripe_unavailable"}
    assert expired_cs not in spy.expired
    assert row(api, expired).status == 0  # it may still be paid, as far as the job knows: never cancelled blind
    monkeypatch.setattr(gateway, "list_checkouts_sync", listing)
    assert outcomes(run(api, "expire", now=later())) == {expired: "checkout_expired"}


def test_a_dry_run_lists_but_expires_and_changes_nothing(api, c, sandbox, monkeypatch):
    webhooks_off(sandbox)
    rows = _stale_with_seeded_sessions(api, c, sandbox, ["open", "expired", "paid"])
    spy = Spy(monkeypatch, api.state.services.gateway)

    result = run(api, "expire", now=later(), dry_run=True)

    assert result.dry_run
    assert outcomes(result) == {rows[0][0]: "would_cancel", rows[1][0]: "would_cancel", rows[2][0]: "would_fulfil"}
    assert spy.expired == []
    assert {row(api, b).status for b, _, _ in rows} == {0}
    assert pay.sandbox_session(sandbox, rows[0][1])["status"] == "open"


def _t(minute: int, second: int = 0) -> datetime:
    return datetime(2031, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=minute, seconds=second)


def test_creation_windows_cover_each_time_with_its_margins_without_bridging_gaps():
    times = [_t(0), _t(1), _t(2), _t(200), _t(201)]
    windows = creation_windows(times, per_window=1000, before=timedelta(minutes=5), after=timedelta(minutes=10))
    assert windows == [(_t(-5), _t(12)), (_t(195), _t(211))]  # both ends included


def test_creation_windows_split_a_dense_stretch_into_adjacent_windows_of_about_per_window_times():
    times = [_t(0, s) for s in range(10)] + [_t(0, 5)] * 3
    windows = creation_windows(times, per_window=4, before=timedelta(seconds=1), after=timedelta(seconds=2))
    assert windows[0][0] == _t(0, -1) and windows[-1][1] == _t(0, 11)
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert start == end + timedelta(seconds=1)  # adjacent: no second listed twice or skipped
    assert all(sum(start <= t <= end for t in times) <= 6 for start, end in windows)
    assert sum(sum(start <= t <= end for t in times) for start, end in windows) == len(times)


@pytest.mark.parametrize("per_window", [1, 2, 1000])
def test_creation_windows_of_one_time(per_window):
    assert creation_windows([_t(0)], per_window=per_window, before=timedelta(0), after=timedelta(0)) == [(_t(0), _t(0))]


def test_a_booking_whose_checkout_no_list_shows_takes_the_per_row_path(api, c, sandbox, monkeypatch):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    with api.state.db.session_scope() as s:  # our record says it was made two days before its checkout was
        s.get(Booking, uuid.UUID(b["id"])).created_at = utc_now() - timedelta(days=2)
    per_row = []
    settle_one = booking_flows.settle_stale_checkout

    def counted(*args, **kwargs):
        per_row.append(kwargs["checkout_id"])
        return settle_one(*args, **kwargs)

    monkeypatch.setattr(booking_flows, "settle_stale_checkout", counted)

    result = run(api, "expire", now=later())

    assert outcomes(result) == {b["id"]: "checkout_expired"} and per_row == [b["stripeSessionId"]]
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "expired"


def test_bookings_no_list_shows_are_settled_in_parallel_within_the_same_bound(api, c, sandbox, monkeypatch):
    # Issue #33: they were settled one after another, two Stripe calls each (0.6 s a row at 300 ms).
    webhooks_off(sandbox)
    ids = []
    for hour in range(8):
        b = booked(c, hour=8 + hour)["b"]
        ids.append(b["id"])
        with api.state.db.session_scope() as s:  # our record says it was made before its checkout was
            s.get(Booking, uuid.UUID(b["id"])).created_at = utc_now() - timedelta(days=2)
    monkeypatch.setattr(api.state.services.settings, "job_stripe_concurrency", 4)
    lock, state = threading.Lock(), {"now": 0, "most": 0}
    settle_one = booking_flows.settle_stale_checkout

    def counted(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.1)
            return settle_one(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(booking_flows, "settle_stale_checkout", counted)

    result = run(api, "expire", now=later())

    assert outcomes(result) == dict.fromkeys(ids, "checkout_expired")
    assert state["most"] == 4  # one at a time before; never more than the bound
