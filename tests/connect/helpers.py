"""Connect helpers: onboarding a teacher on the sandbox's hosted form, reading Stripe's side."""

from __future__ import annotations

import stripe

from tests.support.servers import http_get, http_post

AUTH = {"Authorization": "Bearer sk_test_sandbox"}


def onboard(teacher: dict, *, choice: str = "complete") -> dict:
    """The teacher connects payouts: the API's onboarding URL, the hosted form, back to Tutorbook."""
    r = teacher["client"].post("/api/Teachers/me/payouts/onboard")
    assert r.status_code == 200, r.text
    url = r.json()["data"]["url"]
    answer = http_post(url, data={"choice": choice}, follow_redirects=False, timeout=30)
    assert answer.status_code == 303 and "/teacher/payouts?returned=1" in answer.headers["location"]
    status = teacher["client"].get("/api/Teachers/me/payouts")
    assert status.status_code == 200, status.text
    return status.json()["data"]


def stripe_get(sandbox, path: str, **params) -> dict:
    r = http_get(f"{sandbox.base_url}{path}", params=params, headers=AUTH, timeout=30)
    r.raise_for_status()
    return r.json()


def charge_of(sandbox, payment_intent: str) -> dict:
    """The payment's charge with its transfer and application fee expanded."""
    intent = stripe_get(
        sandbox,
        f"/v1/payment_intents/{payment_intent}",
        **{"expand[]": ["latest_charge.transfer", "latest_charge.application_fee"]},
    )
    return intent["latest_charge"]


def destination_checkout(sandbox, *, booking_id: str, destination: str, amount: int, fee: int) -> dict:
    """A second destination charge naming the booking, as a checkout Tutorbook made for it earlier
    would be (not the booking's own checkout, so the app refuses its payment). Pay with pay(url)."""
    client = stripe.StripeClient(
        "sk_test_sandbox",
        base_addresses={"api": sandbox.base_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )
    meta = {"booking_id": booking_id, "type": "session-booking"}
    params = {
        "mode": "payment",
        "line_items": [
            {"price_data": {"currency": "usd", "unit_amount": amount, "product_data": {"name": "x"}}, "quantity": 1}
        ],
        "success_url": "http://127.0.0.1:9/payment/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:9/payment/cancel",
        "client_reference_id": booking_id,
        "metadata": meta,
        "payment_intent_data": {
            "metadata": meta,
            "transfer_data": {"destination": destination},
            "application_fee_amount": fee,
        },
    }
    return client.v1.checkout.sessions.create(params=params).to_dict()
