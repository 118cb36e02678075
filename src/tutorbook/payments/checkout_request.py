"""What every Checkout Session Tutorbook opens asks of Stripe: a booking's (`gateway.create_checkout`),
a weekly series lesson's (`later.create_series_checkout`) and a package purchase's
(`purchase_checkout.create_purchase_checkout`). One line item, the return URLs, the expiry, the
same metadata on the session and on its payment intent (with the request's trace, so the webhooks
continue it), a destination charge's transfer and fee, the parent as a Customer or an email. Each
caller adds what is its own and posts it with `post`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from tutorbook import tracing
from tutorbook.bookings.checkout import Checkout
from tutorbook.payments import objects
from tutorbook.payments.http import mapped_errors

TRACE_METADATA = "traceparent"


def checkout_params(
    *,
    reference: str,
    metadata: dict[str, str],
    amount: int,
    currency: str,
    product_name: str,
    success_url: str,
    cancel_url: str,
    expires_at: datetime,
    customer_email: str | None,
    customer: str | None = None,
    destination: str | None = None,
    application_fee: int | None = None,
) -> dict[str, Any]:
    """A Checkout Session's parameters (`mode=payment`, one line item of `amount`)."""
    metadata = dict(metadata)
    trace = tracing.traceparent()
    if trace:  # the webhooks of this payment continue the request's trace (docs/operations.md, "Tracing")
        metadata[TRACE_METADATA] = trace
    intent: dict[str, Any] = {"metadata": dict(metadata)}
    if destination:  # a destination charge: the whole amount to the teacher, the fee taken back
        intent["transfer_data"] = {"destination": destination}
        if application_fee:  # no fee (0 %): no application fee object, nothing to refund later
            intent["application_fee_amount"] = application_fee
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount,
                    "product_data": {"name": product_name[:250]},
                },
                "quantity": 1,
            }
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": reference,
        "metadata": metadata,
        "payment_intent_data": intent,
        "expires_at": int(expires_at.timestamp()),
    }
    if customer:  # Stripe takes a customer or a customer_email, not both
        params["customer"] = customer
    elif customer_email:
        params["customer_email"] = customer_email
    return params


async def post(
    client: Any, slot: Callable[[], AbstractAsyncContextManager[None]], *, key: str, params: dict[str, Any]
) -> Checkout:
    """Open the session (idempotent per `key`) within the gateway's bound on calls in flight.
    raw_request: the SDK's own request (auth, retries, idempotency, errors), answered as a plain
    dict: building a StripeObject tree for a session we read ten fields of cost about a tenth of a
    booking's CPU (docs/PERFORMANCE.md, section 2)."""
    async with slot():
        with mapped_errors():
            answer = await client.raw_request_async("post", "/v1/checkout/sessions", idempotency_key=key, **params)
    return objects.read_checkout(answer.data)
