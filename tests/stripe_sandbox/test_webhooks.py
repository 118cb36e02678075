"""Signed webhook delivery with retries, background expiry, and surviving a restart."""

from __future__ import annotations

import socket

import pytest
import stripe

from .helpers import (
    WEBHOOK_SECRET,
    Receiver,
    control,
    make_client,
    payload_of,
    session_params,
    submit_card,
    wait_for,
)


def unused_url() -> str:
    """A URL on a local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhooks/stripe"


def test_completed_event_is_signed_and_retried_until_acknowledged(make_sandbox, receiver):
    handle = make_sandbox(webhook_url=receiver.url)
    client = make_client(handle.base_url)
    session = client.v1.checkout.sessions.create(params=session_params())
    assert submit_card(session.url).status_code == 303
    # Like Checkout, the redirect waited for the first delivery attempt.
    assert len(receiver.raw) == 1

    [event] = wait_for(lambda: receiver.acked_of_type("checkout.session.completed"))
    assert receiver.attempts[event.id] == 2  # the first attempt got a 500
    assert receiver.bad_signatures == 0
    assert event.data.object.id == session.id
    assert event.data.object.payment_status == "paid"
    assert event.data.object.metadata["booking_id"] == "42"
    assert event.livemode is False and event.id.startswith("evt_")

    body, signature = receiver.raw[0]
    assert signature.startswith("t=") and ",v1=" in signature and ", " not in signature
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, signature, "whsec_wrong")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.replace("paid", "PAID"), signature, WEBHOOK_SECRET)
    payload = payload_of(receiver)
    assert payload["pending_webhooks"] == 1
    assert payload["request"] == {"id": None, "idempotency_key": None}

    deliveries = wait_for(lambda: [d for d in control(handle, "GET", "deliveries")["data"] if d["delivered"]])
    assert deliveries[0]["event_id"] == event.id
    assert deliveries[0]["type"] == "checkout.session.completed"
    assert deliveries[0]["attempts"] == 2 and deliveries[0]["last_status"] == 200
    assert client.v1.events.retrieve(event.id).pending_webhooks == 0


def test_refund_events_delivered(make_sandbox):
    receiver = Receiver(fail_first=False)
    try:
        handle = make_sandbox(webhook_url=receiver.url)
        client = make_client(handle.base_url)
        session = client.v1.checkout.sessions.create(params=session_params())
        submit_card(session.url)
        intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
        client.v1.refunds.create(params={"payment_intent": intent, "amount": 1000})
        [refunded] = wait_for(lambda: receiver.acked_of_type("charge.refunded"))
        assert refunded.data.object.amount_refunded == 1000
        assert wait_for(lambda: receiver.acked_of_type("refund.created"))
    finally:
        receiver.close()


def test_clock_advance_expires_in_background(make_sandbox, receiver):
    handle = make_sandbox(webhook_url=receiver.url)
    client = make_client(handle.base_url)
    session = client.v1.checkout.sessions.create(params=session_params())
    before = control(handle, "GET", "clock")
    after = control(handle, "POST", "clock/advance", {"seconds": 24 * 3600 + 1})
    assert after["now"] >= before["now"] + 24 * 3600 + 1

    # Only events are listed here, so the session can only expire in the background.
    expired = wait_for(lambda: client.v1.events.list(params={"type": "checkout.session.expired"}).data)
    assert expired[0].data.object.id == session.id
    assert expired[0].data.object.status == "expired"
    assert expired[0].created >= session.expires_at
    [delivered] = wait_for(lambda: receiver.acked_of_type("checkout.session.expired"))
    assert delivered.id == expired[0].id
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_deliver_webhooks_off_and_redeliver(make_sandbox):
    receiver = Receiver(fail_first=False)
    try:
        handle = make_sandbox(webhook_url=receiver.url, deliver_webhooks=False)
        client = make_client(handle.base_url)
        session = client.v1.checkout.sessions.create(params=session_params())
        submit_card(session.url)
        assert control(handle, "GET", "deliveries")["data"] == []
        control(handle, "POST", "config", {"deliver_webhooks": True})
        assert control(handle, "POST", "deliveries/redeliver")["queued"] == 1
        [first] = wait_for(lambda: receiver.acked_of_type("checkout.session.completed"))
        control(handle, "POST", "deliveries/redeliver", {"event_ids": [first.id]})
        # At least once: the same event id arrives again.
        wait_for(lambda: len(receiver.acked_of_type("checkout.session.completed")) == 2)
        assert {e.id for e in receiver.acked} == {first.id}
    finally:
        receiver.close()


def test_restart_keeps_state_and_resumes_deliveries(make_sandbox):
    first = make_sandbox(webhook_url=unused_url())
    client = make_client(first.base_url)
    open_session = client.v1.checkout.sessions.create(params=session_params())
    paid = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "restart-key"})
    assert submit_card(paid.url).status_code == 303
    control(first, "POST", "clock/advance", {"seconds": 60})
    offset = control(first, "GET", "clock")["offset_s"]
    pending = wait_for(lambda: [d for d in control(first, "GET", "deliveries")["data"] if d["attempts"] >= 1])
    assert not pending[0]["delivered"] and pending[0]["last_error"]
    first.stop()

    receiver = Receiver(fail_first=False)
    try:
        second = make_sandbox(webhook_url=receiver.url)
        client = make_client(second.base_url)
        [event] = wait_for(lambda: receiver.acked_of_type("checkout.session.completed"))
        assert event.data.object.id == paid.id
        assert control(second, "GET", "clock")["offset_s"] == offset
        assert client.v1.checkout.sessions.retrieve(paid.id).payment_status == "paid"
        reopened = client.v1.checkout.sessions.retrieve(open_session.id)
        assert reopened.status == "open"
        assert reopened.url == f"{second.base_url}/c/pay/{open_session.id}"
        replay = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "restart-key"})
        assert replay.id == paid.id
        assert submit_card(reopened.url).status_code == 303
    finally:
        receiver.close()


def test_delete_all_test_data_keeps_clock_and_settings(make_sandbox):
    handle = make_sandbox(webhook_url=unused_url(), deliver_webhooks=False)
    client = make_client(handle.base_url)
    paid = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "reset-key"})
    submit_card(paid.url)
    control(handle, "POST", "clock/advance", {"seconds": 60})
    offset = control(handle, "GET", "clock")["offset_s"]

    deleted = control(handle, "DELETE", "test-data")["deleted"]

    assert deleted["objects"] >= 3  # the session, its payment intent, its event
    assert deleted["idempotency"] == 1
    assert client.v1.checkout.sessions.list().data == []
    assert client.v1.events.list().data == []
    assert control(handle, "GET", "clock")["offset_s"] == offset
    assert control(handle, "GET", "config")["deliver_webhooks"] is False
    # The idempotency key is free again: the same request makes a new session.
    again = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "reset-key"})
    assert again.id != paid.id
