"""A weekly series' checkout (issue #29): the parent's Stripe Customer on it and the card saved
for off-session charges. The customers, saved cards and off-session charges themselves are the
gateway's (`later.py`)."""

from __future__ import annotations

from typing import Any


def for_series(params: Any, *, booking_id: str, customer: str | None, save_card: bool, attempt: str | None) -> str:
    """A checkout's parameters for a weekly series, and its idempotency key: with `customer`
    (the parent's; Stripe refuses customer_email beside it) and `save_card`, the card is saved
    for off-session charges; `attempt` names another checkout for the same booking (a lesson's
    pay link opened again once its checkout closed), with a key of its own."""
    if customer:
        params.pop("customer_email", None)
        params["customer"] = customer
    if save_card:
        params["payment_intent_data"]["setup_future_usage"] = "off_session"
    return f"checkout-{booking_id}" + (f"-{attempt}" if attempt else "")
