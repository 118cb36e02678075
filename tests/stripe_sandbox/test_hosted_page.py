"""The hosted checkout page: only a real card submission pays."""

from __future__ import annotations

import html
import re
import threading
import time

import pytest
import stripe

from stripe_sandbox.hosted import RECHECK_S
from stripe_sandbox.store import Delivery, Store
from tests.support.servers import http_client

from .helpers import CANCEL_URL, Receiver, control, http, make_client, session_params, submit_card


def back_href(page: str) -> str:
    """The (unescaped) href of the page's "Back" link."""
    match = re.search(r'<a href="([^"]*)">Back</a>', page)
    assert match, "no Back link"
    return html.unescape(match.group(1))


def test_page_shows_product_amount_and_accessible_form(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    page = http.get(session.url)
    assert page.status_code == 200
    text = page.text
    assert "Maths lesson with Ada" in text and "USD 50.00" in text
    assert f'<form method="post" action="/c/pay/{session.id}"' in text
    for field in ("cardNumber", "cardExpiry", "cardCvc", "billingName"):
        assert f'<label for="{field}">' in text
        assert f'id="{field}" name="{field}"' in text
    assert '<button type="submit">Pay</button>' in text


def test_pay_with_4242_completes_the_session(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    response = submit_card(session.url)
    assert response.status_code == 303
    assert response.headers["location"] == (f"http://app.test/payment/success?session_id={session.id}")
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert paid.status == "complete" and paid.payment_status == "paid"
    assert paid.payment_intent.startswith("pi_") and paid.url is None
    assert paid.customer_details.name == "Pat Parent"
    intent = client.v1.payment_intents.retrieve(paid.payment_intent)
    assert intent.status == "succeeded" and intent.amount_received == 5000
    assert intent.metadata.to_dict() == {"booking_id": "42"}
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.paid and charge.captured and charge.amount == 5000
    assert charge.payment_method_details.card.last4 == "4242"
    completed = client.v1.events.list(params={"type": "checkout.session.completed"}).data
    assert [e.data.object.id for e in completed] == [session.id]
    assert completed[0].data.object.payment_status == "paid"


@pytest.mark.parametrize(
    ("number", "fields", "message", "status"),
    [
        ("4000 0000 0000 0002", {}, "Your card was declined.", 402),
        ("4111 1111 1111 1111", {}, "Your card number is invalid.", 400),
        ("", {}, "Please fill in: card number.", 400),
        (
            "4242 4242 4242 4242",
            {"cardExpiry": "", "billingName": ""},
            "Please fill in: expiry date, name on card.",
            400,
        ),
        ("4242 4242 4242 4242", {"cardExpiry": "13/30"}, "expiration date is invalid", 400),
        ("4242 4242 4242 4242", {"cardExpiry": "01/20"}, "expiration date is in the past", 400),
        ("4242 4242 4242 4242", {"cardCvc": "12"}, "security code is invalid", 400),
    ],
)
def test_rejected_cards_take_no_money(client, number, fields, message, status):
    session = client.v1.checkout.sessions.create(params=session_params())
    response = submit_card(session.url, number, **fields)
    assert response.status_code == status
    assert html.escape(message, quote=True) in response.text
    assert "Pat Parent" in response.text or not fields.get("billingName", "x")
    still = client.v1.checkout.sessions.retrieve(session.id)
    assert still.status == "open" and still.payment_status == "unpaid"
    assert still.payment_intent is None
    assert not client.v1.events.list().data


def test_back_link_keeps_placeholder_by_default(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert back_href(http.get(session.url).text) == CANCEL_URL


def test_back_link_substituted_when_configured(make_sandbox):
    handle = make_sandbox(substitute_cancel_url=True)
    session = make_client(handle.base_url).v1.checkout.sessions.create(params=session_params())
    assert back_href(http.get(session.url).text) == (
        f"http://app.test/payment/cancel?session_id={session.id}&booking_id=42"
    )
    control(handle, "POST", "config", {"substitute_cancel_url": False})
    assert back_href(http.get(session.url).text) == CANCEL_URL


def test_expired_session_cannot_be_paid(client, sandbox):
    session = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(session.id)
    page = http.get(f"{sandbox.base_url}/c/pay/{session.id}")
    assert "This checkout session has expired" in page.text
    assert "cardNumber" not in page.text
    response = submit_card(f"{sandbox.base_url}/c/pay/{session.id}")
    assert response.status_code == 409 and "has expired" in response.text
    after = client.v1.checkout.sessions.retrieve(session.id)
    assert after.status == "expired" and after.payment_status == "unpaid"
    assert after.payment_intent is None


def test_session_past_expires_at_cannot_be_paid(client, sandbox):
    now = control(sandbox, "GET", "clock")["now"]
    session = client.v1.checkout.sessions.create(params=session_params(expires_at=now + 1800))
    control(sandbox, "POST", "clock/advance", {"seconds": 1801})
    response = submit_card(session.url)
    assert response.status_code == 409 and "has expired" in response.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_paid_session_cannot_be_paid_twice(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert submit_card(session.url).status_code == 303
    page = http.get(session.url)
    assert "already been paid" in page.text and "cardNumber" not in page.text
    again = submit_card(session.url)
    assert again.status_code == 409 and "already been paid" in again.text
    assert len(client.v1.events.list(params={"type": "checkout.session.completed"}).data) == 1


def test_unknown_session_page_is_404(sandbox):
    assert http.get(f"{sandbox.base_url}/c/pay/cs_test_missing").status_code == 404
    assert submit_card(f"{sandbox.base_url}/c/pay/cs_test_missing").status_code == 404


def run_concurrently(*actions):
    """Run callables at the same moment in threads; return their results in order."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def runner(index, action):
        barrier.wait()
        try:
            results[index] = action()
        except Exception as exc:  # collected and inspected by the caller
            results[index] = exc

    threads = [threading.Thread(target=runner, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_payments_pay_once(client):
    session = client.v1.checkout.sessions.create(params=session_params())

    def pay():
        with http_client() as own:
            return own.post(
                session.url,
                data={
                    "cardNumber": "4242424242424242",
                    "cardExpiry": "12/34",
                    "cardCvc": "123",
                    "billingName": "Pat",
                },
            ).status_code

    statuses = run_concurrently(pay, pay, pay, pay)
    assert sorted(statuses) == [303, 409, 409, 409]
    assert len(client.v1.events.list(params={"type": "checkout.session.completed"}).data) == 1


def test_expire_racing_pay_has_one_winner(client):
    for _ in range(4):
        session = client.v1.checkout.sessions.create(params=session_params())
        expired, paid = run_concurrently(
            lambda s=session: client.v1.checkout.sessions.expire(s.id),
            lambda s=session: submit_card(s.url).status_code,
        )
        final = client.v1.checkout.sessions.retrieve(session.id)
        if paid == 303:
            assert isinstance(expired, stripe.InvalidRequestError)
            assert final.status == "complete" and final.payment_status == "paid"
        else:
            assert paid == 409 and final.status == "expired"
            assert final.payment_status == "unpaid" and not isinstance(expired, Exception)


def test_the_page_waits_for_a_slow_webhook_without_polling_the_store(make_sandbox, monkeypatch):
    """While the receiver takes its time, the paying page waits for the deliverer's word (and
    re-reads the state a few times a second), not polling SQLite every 20 ms; it still redirects
    as soon as the attempt has ended."""
    slow = Receiver(fail_first=False)
    original = slow.handle

    def slow_handle(body: bytes, signature: str | None, content_type: str) -> int:
        time.sleep(1.0)
        return original(body, signature, content_type)

    slow.handle = slow_handle  # type: ignore[method-assign]
    reads: list[str] = []
    read_deliveries = Store.deliveries_of

    def counting(self: Store, event_id: str) -> list[Delivery]:
        reads.append(event_id)
        return read_deliveries(self, event_id)

    monkeypatch.setattr(Store, "deliveries_of", counting)
    try:
        handle = make_sandbox(webhook_url=slow.url, redirect_wait_s=5.0)
        session = make_client(handle.base_url).v1.checkout.sessions.create(params=session_params())
        started = time.monotonic()
        response = submit_card(session.url)
        waited = time.monotonic() - started
    finally:
        slow.close()
    assert response.status_code == 303
    # Redirected once the slow attempt ended, not at redirect_wait_s (5 s); the margin is for a busy
    # machine (CI runs two test workers beside PostgreSQL).
    assert 1.0 <= waited < 4.5
    assert [e.type for e in slow.acked] == ["checkout.session.completed"]
    page_reads = [r for r in reads if r == slow.acked[0].id]
    # Read when the wait starts, a few times a second (RECHECK_S), once the attempt ended: main read
    # it every 20 ms, ~50 times a second of waiting.
    assert 2 <= len(page_reads) <= waited / RECHECK_S + 3
