"""Checkout Session API through the real stripe SDK over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import stripe

from .helpers import (
    CANCEL_URL,
    SUCCESS_URL,
    control,
    http,
    make_client,
    session_params,
    submit_card,
)


def test_create_retrieve_session(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert session.status == "open" and session.payment_status == "unpaid"
    assert session.amount_total == 5000 and session.amount_subtotal == 5000
    assert session.currency == "usd"
    assert session.payment_intent is None
    assert session.livemode is False
    assert session.mode == "payment"
    assert session.success_url == SUCCESS_URL and session.cancel_url == CANCEL_URL
    assert session.metadata["booking_id"] == "42"
    assert session.client_reference_id == "42"
    assert session.url.endswith(f"/c/pay/{session.id}")
    assert session.expires_at - session.created == 24 * 3600

    again = client.v1.checkout.sessions.retrieve(session.id)
    assert again.id == session.id and again.url == session.url
    assert again.metadata.to_dict() == {"booking_id": "42", "type": "private_session"}


def test_url_uses_public_url(client, sandbox):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.url == f"{sandbox.base_url}/c/pay/{session.id}"
    assert http.get(session.url).status_code == 200


def test_amounts_sum_line_items(client):
    items = [
        {
            "price_data": {
                "currency": "eur",
                "unit_amount": 1250,
                "product_data": {"name": "Lesson"},
            },
            "quantity": 2,
        },
        {
            "price_data": {
                "currency": "eur",
                "unit_amount": 300,
                "product_data": {"name": "Worksheet"},
            },
            "quantity": 1,
        },
    ]
    session = client.v1.checkout.sessions.create(params=session_params(line_items=items))
    assert session.amount_total == 2800 and session.currency == "eur"
    line_items = client.v1.checkout.sessions.line_items.list(session.id)
    assert [li.description for li in line_items.data] == ["Lesson", "Worksheet"]
    assert [li.amount_total for li in line_items.data] == [2500, 300]


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"mode": None}, "mode"),
        ({"success_url": None}, "success_url"),
        ({"line_items": None}, "line_items"),
        ({"success_url": "not a url"}, "success_url"),
        (
            {
                "line_items": [
                    {
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": 5000,
                            "product_data": {"name": "x"},
                        }
                    }
                ]
            },
            "line_items[0][quantity]",
        ),
        (
            {
                "line_items": [
                    {
                        "price_data": {"currency": "usd", "product_data": {"name": "x"}},
                        "quantity": 1,
                    }
                ]
            },
            "line_items[0][price_data][unit_amount]",
        ),
        (
            {"line_items": [{"price_data": {"currency": "usd", "unit_amount": 5000}, "quantity": 1}]},
            "line_items[0][price_data][product_data][name]",
        ),
        ({"client_reference_id": "x" * 201}, "client_reference_id"),
        ({"customer_email": "not-an-email"}, "customer_email"),
        ({"bogus": "1"}, "bogus"),
    ],
)
def test_create_validates_params(client, overrides, param):
    params = {k: v for k, v in session_params(**overrides).items() if v is not None}
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params=params)
    assert info.value.http_status == 400
    assert info.value.param == param
    assert info.value.error.type == "invalid_request_error"


def test_expires_at_window(client, sandbox):
    now = control(sandbox, "GET", "clock")["now"]
    for bad in (now + 60, now + 25 * 3600):
        with pytest.raises(stripe.InvalidRequestError) as info:
            client.v1.checkout.sessions.create(params=session_params(expires_at=bad))
        assert info.value.param == "expires_at" and info.value.http_status == 400
    ok = client.v1.checkout.sessions.create(params=session_params(expires_at=now + 3600))
    assert ok.expires_at == now + 3600


def test_unknown_id_is_404(client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"
    assert str(info.value.user_message) == "No such checkout.session: 'cs_test_nope'"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire("cs_test_nope")
    assert info.value.http_status == 404


def test_bad_api_key(sandbox):
    bad = make_client(sandbox.base_url, api_key="sk_test_wrong")
    with pytest.raises(stripe.AuthenticationError) as info:
        bad.v1.checkout.sessions.list()
    assert info.value.http_status == 401
    missing = http.get(f"{sandbox.base_url}/v1/checkout/sessions")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"


def test_unrecognized_url(sandbox):
    response = http.post(f"{sandbox.base_url}/v1/subscriptions", headers={"Authorization": "Bearer sk_test_sandbox"})
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Unrecognized request URL")


def test_expire(client, sandbox):
    session = client.v1.checkout.sessions.create(params=session_params())
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired" and expired.url is None
    assert expired.payment_status == "unpaid"
    events = client.v1.events.list(params={"type": "checkout.session.expired"})
    assert [e.data.object.id for e in events.data] == [session.id]
    assert events.data[0].request.id is not None
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire(session.id)
    assert info.value.http_status == 400


def test_expire_complete_session_refused(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert submit_card(session.url).status_code == 303
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire(session.id)
    assert info.value.http_status == 400
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"


def test_list_pagination_and_filters(client):
    ids = [client.v1.checkout.sessions.create(params=session_params()).id for _ in range(5)]
    page = client.v1.checkout.sessions.list(params={"limit": 2})
    assert page.object == "list" and page.url == "/v1/checkout/sessions"
    assert [s.id for s in page.data] == ids[::-1][:2] and page.has_more
    everything = [s.id for s in client.v1.checkout.sessions.list(params={"limit": 2}).auto_paging_iter()]
    assert everything == ids[::-1]
    backwards = client.v1.checkout.sessions.list(params={"limit": 2, "ending_before": ids[0]}).auto_paging_iter()
    assert [s.id for s in backwards] == ids[1:]

    client.v1.checkout.sessions.expire(ids[0])
    expired = client.v1.checkout.sessions.list(params={"status": "expired"})
    assert [s.id for s in expired.data] == [ids[0]]
    created = client.v1.checkout.sessions.retrieve(ids[2]).created
    recent = client.v1.checkout.sessions.list(params={"created": {"gte": created}, "limit": 100})
    assert set(ids[2:]) <= {s.id for s in recent.data}
    assert not client.v1.checkout.sessions.list(params={"created": {"lt": created - 1}}).data

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.list(params={"limit": 101})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.list(params={"starting_after": "cs_test_unknown"})


def test_list_by_payment_intent_and_expand(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    submit_card(session.url)
    paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    intent = paid.payment_intent
    assert intent.object == "payment_intent" and intent.status == "succeeded"
    found = client.v1.checkout.sessions.list(params={"payment_intent": intent.id})
    assert [s.id for s in found.data] == [session.id]
    expanded = client.v1.checkout.sessions.list(
        params={"expand": ["data.payment_intent.latest_charge"], "status": "complete"}
    )
    assert expanded.data[0].payment_intent.latest_charge.paid is True


def test_idempotent_replay(client, sandbox):
    options = {"idempotency_key": "booking-42-checkout"}
    first = client.v1.checkout.sessions.create(params=session_params(), options=options)
    second = client.v1.checkout.sessions.create(params=session_params(), options=options)
    assert second.id == first.id
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(client.v1.checkout.sessions.list().data) == 1

    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(params=session_params(client_reference_id="43"), options=options)


def test_idempotent_concurrent_duplicates_create_one_session(client):
    results: list[str] = []

    def create() -> None:
        session = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "same-key"})
        results.append(session.id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert len(client.v1.checkout.sessions.list().data) == 1


def test_fail_mode_error500_then_recovery(client, sandbox):
    control(sandbox, "POST", "config", {"fail_mode": "error500"})
    with pytest.raises(stripe.APIError) as info:
        client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "outage-key"})
    assert info.value.http_status == 500
    control(sandbox, "POST", "config", {"fail_mode": None})
    # The outage stored nothing under the key, so the retry really creates the session.
    session = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "outage-key"})
    assert session.status == "open"


def test_fail_mode_hang(sandbox):
    control(sandbox, "POST", "config", {"fail_mode": "hang"})
    with pytest.raises(httpx.ReadTimeout):
        http.get(
            f"{sandbox.base_url}/v1/checkout/sessions",
            headers={"Authorization": "Bearer sk_test_sandbox"},
            timeout=0.3,
        )
    control(sandbox, "POST", "config", {"fail_mode": None})
    assert control(sandbox, "GET", "config")["fail_mode"] is None


def test_latency_does_not_block_the_server(client, sandbox):
    control(sandbox, "POST", "config", {"latency_ms": 400})
    done: list[float] = []

    def slow_call() -> None:
        start = time.monotonic()
        client.v1.checkout.sessions.list()
        done.append(time.monotonic() - start)

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.05)
    start = time.monotonic()
    control(sandbox, "GET", "clock")  # answered while the API call is still sleeping
    assert time.monotonic() - start < 0.3
    thread.join()
    assert done and done[0] >= 0.4


OTHER_VERSION = "2026-09-30.dahlia"


def test_events_render_in_the_endpoints_api_version_not_the_callers(make_sandbox):
    # Event.api_version: "the Stripe API version used to render `data` when the event was
    # created"; WebhookEndpoint.api_version: "the API version that events are rendered as for
    # this webhook endpoint" -- not the version of the request that caused the event.
    sandbox = make_sandbox(extra_api_versions=(OTHER_VERSION,))
    headers = {"Authorization": "Bearer sk_test_sandbox", "Stripe-Version": OTHER_VERSION}
    created = http.post(
        f"{sandbox.base_url}/v1/checkout/sessions",
        headers=headers,
        data={
            "mode": "payment",
            "success_url": "https://x.test/ok",
            "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "900",
            "line_items[0][price_data][product_data][name]": "Lesson",
            "line_items[0][quantity]": "1",
        },
    )
    assert created.status_code == 200, created.text
    assert created.headers["Stripe-Version"] == OTHER_VERSION  # the response: the caller's
    session_id = created.json()["id"]
    expired = http.post(
        f"{sandbox.base_url}/v1/checkout/sessions/{session_id}/expire",
        headers={**headers, "Idempotency-Key": "exp-1"},
    )
    assert expired.status_code == 200
    events = http.get(f"{sandbox.base_url}/v1/events", headers=headers).json()
    assert events["data"][0]["api_version"] == stripe.api_version  # the endpoint's (pinned)
    assert events["data"][0]["request"] == {
        "id": expired.headers["Request-Id"],
        "idempotency_key": "exp-1",
    }


def test_an_endpoint_set_to_another_version_renders_events_in_it(make_sandbox):
    sandbox = make_sandbox(extra_api_versions=(OTHER_VERSION,), webhook_api_version=OTHER_VERSION)
    client = make_client(sandbox.base_url)  # sends the pinned version
    session = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(session.id)
    event = client.v1.events.list().data[0]
    assert event.api_version == OTHER_VERSION


def test_an_unknown_endpoint_version_is_refused_at_start(tmp_path):
    from stripe_sandbox import SandboxConfig, create_app

    with pytest.raises(ValueError, match="1999-01-01.bogus"):
        create_app(SandboxConfig(db_path=str(tmp_path / "s.sqlite3"), webhook_api_version="1999-01-01.bogus"))


@pytest.mark.parametrize("version", ["1999-01-01.bogus", "2024-06-20", OTHER_VERSION])
def test_an_unknown_stripe_version_is_refused(sandbox, version):
    # https://docs.stripe.com/api/versioning: a request names a version Stripe knows; the
    # sandbox knows the pinned SDK's (and those its config adds; none here).
    headers = {"Authorization": "Bearer sk_test_sandbox", "Stripe-Version": version}
    answer = http.get(f"{sandbox.base_url}/v1/events", headers=headers)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == f"Invalid Stripe API version: {version}"


def test_the_pinned_version_and_no_header_are_accepted(sandbox):
    for version in ({"Stripe-Version": stripe.api_version}, {}):
        headers = {"Authorization": "Bearer sk_test_sandbox", **version}
        answer = http.get(f"{sandbox.base_url}/v1/events", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Stripe-Version"] == stripe.api_version


def test_async_sdk_methods(client):
    async def scenario() -> tuple[str, str, str]:
        created = await client.v1.checkout.sessions.create_async(params=session_params())
        fetched = await client.v1.checkout.sessions.retrieve_async(created.id)
        expired = await client.v1.checkout.sessions.expire_async(created.id)
        return created.id, fetched.id, expired.status

    created_id, fetched_id, status = asyncio.run(scenario())
    assert created_id == fetched_id and status == "expired"


def _seed(sandbox, specs):
    return control(sandbox, "POST", "checkout-sessions", {"sessions": specs})["ids"]


def _spec(created, state, **extra):
    """A session made at `created`; an open one expires an hour from now (else the sandbox would)."""
    expires_at = int(time.time()) + 3600 if state == "open" else created + 1800
    return {"created": created, "expires_at": expires_at, "amount": 3000, "currency": "usd", "state": state, **extra}


def test_seeded_sessions_are_listed_newest_created_first_by_status_and_window_page_by_page(client, sandbox):
    base = int(time.time()) - 86_400
    # The newer half sent first on purpose: a list is ordered by creation time, not by insertion.
    states = ["open", "expired", "paid"]
    specs = [_spec(base + 10 * k, states[k % 3], metadata={"booking_id": str(k)}) for k in reversed(range(250))]
    ids = _seed(sandbox, specs[:125]) + _seed(sandbox, specs[125:])
    by_k = {int(s["metadata"]["booking_id"]): i for i, s in zip(ids, specs, strict=True)}
    open_ids = [by_k[k] for k in range(249, -1, -1) if k % 3 == 0 and 20 <= k <= 230]
    window = {"gte": base + 200, "lte": base + 2300}
    page = client.v1.checkout.sessions.list(params={"status": "open", "created": window, "limit": 10})
    assert [s.id for s in page.data] == open_ids[:10] and page.has_more
    listed = client.v1.checkout.sessions.list(params={"status": "open", "created": window, "limit": 10})
    assert [s.id for s in listed.auto_paging_iter()] == open_ids  # starting_after, page after page
    paid = client.v1.checkout.sessions.retrieve(by_k[2], params={"expand": ["payment_intent"]})
    assert (paid.status, paid.payment_status, paid.payment_intent.status) == ("complete", "paid", "succeeded")
    assert paid.amount_total == 3000 and paid.metadata["booking_id"] == "2"
    expired = client.v1.checkout.sessions.retrieve(by_k[1])
    assert (expired.status, expired.url) == ("expired", None)
    assert client.v1.checkout.sessions.retrieve(by_k[0]).url.endswith(f"/c/pay/{by_k[0]}")
    assert not client.v1.events.list().data  # seeded as they are: nothing happened now


def test_sessions_created_in_one_second_page_by_insertion(client, sandbox):
    now = int(time.time())
    ids = _seed(sandbox, [_spec(now, "open") for _ in range(5)])
    listed = client.v1.checkout.sessions.list(params={"limit": 2, "created": {"gte": now}}).auto_paging_iter()
    assert [s.id for s in listed] == ids[::-1]
    backwards = client.v1.checkout.sessions.list(params={"limit": 2, "ending_before": ids[0]}).auto_paging_iter()
    assert [s.id for s in backwards] == ids[1:]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"sessions": []},
        {"sessions": [{"created": 1, "expires_at": 2, "amount": 3, "currency": "usd", "state": "lost"}]},
        {"sessions": [{"created": "1", "expires_at": 2, "amount": 3, "currency": "usd", "state": "open"}]},
        {"sessions": [{"created": 1, "expires_at": 2, "amount": 3, "currency": "dollars", "state": "open"}]},
        {"sessions": [{"created": 1, "expires_at": 2, "amount": 3, "currency": "usd", "state": "open", "metadata": 4}]},
    ],
)
def test_seeding_refuses_bad_input_with_a_400(sandbox, body):
    response = http.post(f"{sandbox.base_url}/_sandbox/checkout-sessions", json=body)
    assert response.status_code == 400 and response.json()["error"]["message"]
