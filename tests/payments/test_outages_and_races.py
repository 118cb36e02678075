"""Stripe down, slow or failing: 502/504 and no orphan. Racing bookings: exactly one wins."""

import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import free_port
from tutorbook.bookings.models import Booking
from tutorbook.payments.gateway import CheckoutNotFound, StripeGateway


def all_bookings(db):
    with db.session_scope() as s:
        return [(b.status, b.cancellation_reason) for b in s.scalars(sa.select(Booking))]


def test_stripe_answering_500_gives_502_and_no_pending_booking(api, c, sandbox):
    t, p = f.teacher(c), f.parent(c)
    pay.sandbox_config(sandbox, fail_mode="error500")
    r = f.book(p, t)
    pay.sandbox_config(sandbox, fail_mode=None)
    assert r.status_code == 502 and r.json()["success"] is False and "nothing was charged" in r.json()["message"]
    assert all_bookings(api.state.db) == [(3, "checkout_failed")]
    assert p["client"].get("/api/Sessions/my-bookings").json()["data"]["items"] == []
    assert f.book(p, t).status_code == 201  # the slot is free again


def test_a_checkout_stripe_refuses_says_what_was_refused_not_that_stripe_was_unreachable(api, c, sandbox):
    # The product's own checks keep a price above Stripe's minimum, so the refusal is the sandbox's
    # fail_mode "refuse": a 400 invalid_request_error, as Stripe answers a request it will not take.
    t, p = f.teacher(c), f.parent(c)
    pay.sandbox_config(sandbox, fail_mode="refuse")
    try:
        r = f.book(p, t)
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    body = r.json()
    assert r.status_code == 422 and body["success"] is False
    assert "refused" in body["message"] and "Simulated refusal" in body["message"], body
    assert "could not be reached" not in body["message"]
    assert all_bookings(api.state.db) == [(3, "checkout_failed")]


def test_stripe_hanging_gives_504_within_the_timeout(api, c, sandbox):
    t, p = f.teacher(c), f.parent(c)
    pay.sandbox_config(sandbox, fail_mode="hang")
    started = time.monotonic()
    try:
        r = f.book(p, t)
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    elapsed = time.monotonic() - started
    assert r.status_code == 504 and elapsed < api.state.settings.stripe_timeout_seconds + 3
    assert all_bookings(api.state.db) == [(3, "checkout_failed")]


def close_on_its_loops(gateway: StripeGateway) -> None:
    """Close a gateway the live app used: its connections belong to the server's event loop."""
    import asyncio

    for loop in gateway.http.per_loop.loops():
        asyncio.run_coroutine_threadsafe(gateway.aclose(), loop).result(timeout=5)


def test_stripe_unreachable_gives_502(api, c):
    t, p = f.teacher(c), f.parent(c)
    svc = api.state.services
    real = svc.gateway
    svc.gateway = broken = StripeGateway(
        api.state.settings.model_copy(update={"sandbox_url": f"http://127.0.0.1:{free_port()}"})
    )
    try:
        r = f.book(p, t)
    finally:
        svc.gateway = real
        close_on_its_loops(broken)
    assert r.status_code == 502
    assert all_bookings(api.state.db) == [(3, "checkout_failed")]


def test_the_stripe_client_keeps_as_many_connections_as_calls_in_flight(api):
    """The gateway gives the SDK its own HTTP client: async calls over aiohttp with a pool of
    the bound's ceiling, one per event loop; sync calls over httpx with a pool as large as the
    jobs' concurrency. This fails if an SDK upgrade stops using it (constraints.txt pins stripe)."""
    import asyncio

    from tutorbook.payments.http import StripeHTTPClient

    settings = api.state.settings
    gateway = StripeGateway(settings)
    http = gateway.client._requestor._client
    assert isinstance(http, StripeHTTPClient)
    sync_pool = http._client._transport._pool
    expected = max(settings.stripe_max_concurrent_calls, settings.job_stripe_concurrency)
    assert sync_pool._max_connections == sync_pool._max_keepalive_connections == expected

    async def pools() -> tuple[int, bool]:
        first, again = http._async_client(), http._async_client()
        limit = first._user_connector.limit
        await gateway.aclose()
        return limit, first is again

    assert asyncio.run(pools()) == (settings.stripe_max_calls_in_flight, True)


def test_an_answer_cut_off_mid_body_is_a_gateway_error_not_a_crash(api):
    """Stripe's headers arrive, then the connection drops before the body is whole: the SDK's
    aiohttp client reads the body after its own error mapping, so the gateway must map it."""
    import asyncio
    import socket
    import threading

    from tutorbook.payments import gateway as gw

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\"")

    threading.Thread(target=serve, daemon=True).start()
    settings = api.state.settings.model_copy(
        update={"sandbox_url": f"http://127.0.0.1:{port}", "stripe_max_network_retries": 0}
    )
    gateway = StripeGateway(settings)

    async def retrieve() -> str:
        try:
            await gateway.retrieve_checkout("cs_test_cut_off")
        except gw.GatewayError as exc:
            return type(exc).__name__
        finally:
            await gateway.aclose()
        return "answered"

    try:
        assert asyncio.run(retrieve()) == "GatewayError"
    finally:
        listener.close()


def test_async_stripe_calls_work_from_one_event_loop_after_another(api, sandbox):
    """An aiohttp session belongs to the loop that opened it: each loop gets its own."""
    import asyncio

    gateway = StripeGateway(api.state.settings)

    async def retrieve_unknown() -> str:
        try:
            await gateway.retrieve_checkout("cs_test_does_not_exist")
        except CheckoutNotFound:
            return "not found"
        finally:
            await gateway.aclose()
        return "found"

    assert [asyncio.run(retrieve_unknown()) for _ in range(2)] == ["not found", "not found"]


def test_the_bound_on_stripe_calls_follows_the_measured_rate_and_latency_between_its_floor_and_ceiling():
    """Little's law with headroom: 1.5 x calls completed a second x their latency. A fixed 24 capped
    a process at 80 calls/s at 0.3 s; a bound that only followed latency opened a connection per
    waiting request even when the CPU could not use them."""
    import asyncio

    from tutorbook.payments.limiter import CallBound

    bound = CallBound(floor=24, ceiling=256)
    assert bound.limit == 24  # nothing measured yet
    bound.rate, bound.latency = 30, 0.3  # a CPU-bound process: 9 in flight suffice
    assert bound.limit == 24
    bound.rate, bound.latency = 80, 0.3  # held at 24 / 0.3 s by the bound itself: it grows
    assert bound.limit == 36
    bound.rate, bound.latency = 400, 0.3
    assert bound.limit == 180
    bound.rate, bound.latency = 400, 5.0
    assert bound.limit == 256  # the ceiling

    async def fill_then_wait() -> tuple[int, bool]:
        small = CallBound(floor=2, ceiling=2)
        await small.acquire(1)
        await small.acquire(1)
        third = asyncio.ensure_future(small.acquire(1))
        await asyncio.sleep(0.01)
        waiting = not third.done()
        small.release(0.1)  # the third gets the freed place
        await asyncio.wait_for(third, 1)
        return small.in_flight, waiting

    assert asyncio.run(fill_then_wait()) == (2, True)


def test_the_bound_measures_the_rate_calls_complete_at():
    import time

    from tutorbook.payments.limiter import CallBound

    bound = CallBound(floor=1, ceiling=1000)
    bound._window_start = time.monotonic() - 0.5
    for _ in range(49):
        bound._count(0.2)
    assert bound.rate is None  # no second counted yet
    bound._window_start -= 0.5  # a second has passed: the 50th call closes it
    bound._count(0.2)
    assert bound.rate is not None and 45 <= bound.rate <= 50
    assert bound.latency is not None and abs(bound.latency - 0.2) < 1e-9
    assert bound.limit in (14, 15)  # 1.5 x ~50/s x 0.2 s


def test_a_wait_that_times_out_leaves_no_place_taken():
    import asyncio

    from tutorbook.payments.limiter import CallBound

    async def run() -> int:
        bound = CallBound(floor=1, ceiling=1)
        await bound.acquire(1)
        try:
            await bound.acquire(0.05)
        except TimeoutError:
            pass
        else:
            raise AssertionError("a second place was given")
        bound.release(0.1)
        return bound.in_flight

    assert asyncio.run(run()) == 0


def test_stripe_calls_beyond_the_limit_wait_at_most_the_timeout(api):
    """Calls over TUTORBOOK_STRIPE_MAX_CONCURRENT_CALLS queue in the gateway; a queued call still fails within the
    configured timeout (as a timeout: the booking then answers 504), it never waits forever."""
    import asyncio

    from tutorbook.payments import gateway as gw

    settings = api.state.settings.model_copy(
        update={"stripe_timeout_seconds": 0.3, "stripe_max_concurrent_calls": 1, "stripe_max_calls_in_flight": 1}
    )
    g = StripeGateway(settings)

    async def second_call_while_the_first_holds_the_slot():
        async with g._slot():
            started = time.monotonic()
            try:
                await g.retrieve_checkout("cs_test_never_sent")
            except gw.GatewayTimeout:
                return time.monotonic() - started
        raise AssertionError("the second call got a slot")

    assert 0.25 < asyncio.run(second_call_while_the_first_holds_the_slot()) < 2


def test_cancel_payment_while_stripe_is_down_is_502_and_keeps_the_booking_pending(api, c, sandbox):
    t, p = f.teacher(c), f.parent(c)
    b = f.book(p, t).json()["data"]
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        r = p["client"].post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}")
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert r.status_code == 502
    assert pay.booking_row(api.state.db, b["id"]).status == 0  # the checkout may still be paid; the job settles it
    assert p["client"].post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}").status_code == 200


def test_concurrent_bookings_of_one_slot_let_exactly_one_win(api, c):
    t = f.teacher(c)
    parents = [f.parent(c) for _ in range(12)]
    start = f.slot(days=5, hour=9)
    with ThreadPoolExecutor(len(parents)) as pool:
        codes = list(pool.map(lambda p: f.book(p, t, starts_at=start).status_code, parents))
    assert sorted(codes) == [201] + [409] * (len(parents) - 1)
    assert [s for s, _ in all_bookings(api.state.db)] == [0]


def test_concurrent_overlapping_but_different_slots_also_let_one_win(api, c):
    t = f.teacher(c)
    parents = [f.parent(c) for _ in range(6)]
    starts = [f.slot(days=6, hour=9, minute=m) for m in (0, 10, 20, 30, 40, 50)]
    with ThreadPoolExecutor(len(parents)) as pool:
        pairs = zip(parents, starts, strict=True)
        codes = list(pool.map(lambda ps: f.book(ps[0], t, starts_at=ps[1]).status_code, pairs))
    assert codes.count(201) == 1 and codes.count(409) == 5


def test_cancel_payment_racing_the_payment_never_cancels_a_paid_booking(api, c, sandbox):
    for _ in range(3):
        t, p = f.teacher(c), f.parent(c)
        b = f.book(p, t).json()["data"]
        with ThreadPoolExecutor(2) as pool:
            paid = pool.submit(pay.pay, b["checkoutUrl"])
            cancelled = pool.submit(p["client"].post, f"/api/Sessions/cancel-payment/{b['stripeSessionId']}")
            paid, cancelled = paid.result(), cancelled.result()
        cs = pay.sandbox_session(sandbox, b["stripeSessionId"])
        row = pay.booking_row(api.state.db, b["id"])
        if cs["payment_status"] == "paid":
            assert cancelled.status_code == 400 and row.status == 1
        else:
            assert cs["status"] == "expired" and row.status == 3 and cancelled.status_code == 200


def test_a_checkout_created_again_for_the_same_booking_is_the_same_session(api):
    """create_checkout sends its idempotency key (`checkout-<booking id>`): a retry after a lost
    answer gets the session Stripe made the first time, never a second one to pay."""
    import asyncio
    import uuid
    from datetime import UTC, datetime, timedelta

    g = StripeGateway(api.state.settings)
    booking_id = str(uuid.uuid4())
    expires = datetime.now(UTC) + timedelta(minutes=40)

    async def twice():
        made = []
        for _ in range(2):
            made.append(
                await g.create_checkout(
                    booking_id=booking_id, amount=6000, currency="eur", product_name="Maths",
                    customer_email="p@example.com", success_url="http://127.0.0.1/ok", cancel_url="http://127.0.0.1/no",
                    expires_at=expires,
                )
            )
        await g.aclose()
        return made

    first, again = asyncio.run(twice())
    assert first.id == again.id and first.id.startswith("cs_")
    assert first.client_reference_id == booking_id and first.metadata["booking_id"] == booking_id
    assert first.amount_total == 6000 and first.url
