"""Stripe's JSON objects read into the product's plain values (Checkout, AccountState,
PaymentSplit), and the small rules of Stripe's wire format the gateway and the webhook share:
the expire call's idempotency key, the Stripe-Signature timestamp, a session's path.

Pure: everything here takes plain dicts (the gateway turns the SDK's objects into dicts first),
so it needs no Stripe and tests without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from tutorbook.bookings.checkout import Checkout, PaymentSplit
from tutorbook.payments.port import (
    ChargeOutcome,
    OffSessionCharge,
    PlatformAccount,
    Reversal,
    SavedCard,
    Transfer,
    WebhookEndpoint,
)
from tutorbook.teachers.payouts import AccountState

__all__ = [
    "WEBHOOK_TOLERANCE_S",
    "account_from_event_object",
    "checkout_from_event_object",
    "expanded",
    "expire_key",
    "expiry_reason",
    "read_account",
    "read_checkout",
    "read_declined_charge",
    "read_off_session_charge",
    "read_platform_account",
    "read_reversal",
    "read_saved_card",
    "read_split",
    "read_transfer",
    "read_webhook_endpoint",
    "session_path",
    "signed_at",
]


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def read_checkout(d: Mapping[str, Any]) -> Checkout:
    """A Checkout from a Checkout Session's JSON."""
    pi = d.get("payment_intent")
    if isinstance(pi, dict):
        pi = pi.get("id")
    return Checkout(
        id=d["id"],
        status=d.get("status") or "open",
        payment_status=d.get("payment_status") or "unpaid",
        url=d.get("url"),
        payment_intent=pi,
        amount_total=d.get("amount_total"),
        currency=d.get("currency"),
        client_reference_id=d.get("client_reference_id"),
        metadata=dict(d.get("metadata") or {}),
        expires_at=_ts(d.get("expires_at")),
        created=_ts(d.get("created")),
    )


def checkout_from_event_object(obj: Mapping[str, Any]) -> Checkout:
    """A Checkout built from a (signature-verified) event's data.object."""
    return read_checkout(obj)


def read_account(d: Mapping[str, Any]) -> AccountState:
    """An AccountState from a connected account's JSON."""
    requirements = d.get("requirements") or {}
    return AccountState(
        id=d["id"],
        charges_enabled=bool(d.get("charges_enabled")),
        payouts_enabled=bool(d.get("payouts_enabled")),
        details_submitted=bool(d.get("details_submitted")),
        currently_due=list(requirements.get("currently_due") or []),
        disabled_reason=requirements.get("disabled_reason"),
    )


def account_from_event_object(obj: Mapping[str, Any]) -> AccountState:
    """An AccountState built from a (signature-verified) `account.updated` event's data.object."""
    return read_account(obj)


def _id(value: object) -> str | None:
    """The id of an expanded object, or the id itself."""
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def expanded(value: object) -> Mapping[str, Any]:
    """An expanded object, or an empty one where Stripe gave only an id (or nothing)."""
    return value if isinstance(value, Mapping) else {}


def read_split(d: Mapping[str, Any], refunds: list[Mapping[str, Any]]) -> PaymentSplit | None:
    """How a payment intent (its `latest_charge` expanded with the transfer and the application
    fee) was split, given its refunds; None before it is charged."""
    charge = d.get("latest_charge")
    if not isinstance(charge, Mapping):
        return None
    transfer = expanded(charge.get("transfer"))
    fee = expanded(charge.get("application_fee"))
    without = (
        tuple(r["id"] for r in refunds if r.get("status") != "failed" and not _id(r.get("transfer_reversal")))
        if transfer
        else ()
    )
    return PaymentSplit(
        charge_id=charge["id"],
        destination=expanded(d.get("transfer_data")).get("destination"),
        transfer_id=transfer.get("id"),
        transfer_amount=int(transfer.get("amount") or 0),
        transfer_reversed=int(transfer.get("amount_reversed") or 0),
        fee_id=fee.get("id"),
        fee_amount=int(fee.get("amount") or 0),
        fee_refunded=int(fee.get("amount_refunded") or 0),
        refunded=int(charge.get("amount_refunded") or 0),
        refunds_without_reversal=without,
        amount=int(charge.get("amount") or 0),
    )


def read_transfer(d: Mapping[str, Any]) -> Transfer:
    """A Transfer from a transfer's JSON."""
    return Transfer(
        id=d["id"],
        amount=int(d.get("amount") or 0),
        currency=str(d.get("currency") or ""),
        destination=str(_id(d.get("destination")) or ""),
        source_transaction=_id(d.get("source_transaction")),
        transfer_group=d.get("transfer_group"),
        amount_reversed=int(d.get("amount_reversed") or 0),
        metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
    )


def read_reversal(d: Mapping[str, Any]) -> Reversal:
    """A Reversal from a transfer reversal's JSON."""
    return Reversal(id=d["id"], transfer_id=str(_id(d.get("transfer")) or ""), amount=int(d.get("amount") or 0))


def read_saved_card(d: Mapping[str, Any]) -> SavedCard:
    """A SavedCard from a card PaymentMethod's JSON."""
    card = expanded(d.get("card"))
    return SavedCard(
        id=d["id"],
        customer=str(_id(d.get("customer")) or ""),
        brand=str(card.get("brand") or ""),
        last4=str(card.get("last4") or ""),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
    )


def read_off_session_charge(intent: Mapping[str, Any]) -> OffSessionCharge:
    """What a confirmed off-session PaymentIntent came to (Stripe answered 200)."""
    status = intent.get("status")
    outcome: ChargeOutcome = (
        "succeeded" if status == "succeeded" else "requires_action" if status == "requires_action" else "declined"
    )
    error = expanded(intent.get("last_payment_error"))
    return OffSessionCharge(
        outcome=outcome,
        payment_intent=intent.get("id"),
        charge_id=_id(intent.get("latest_charge")),
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or ""),
        code=error.get("code"),
        decline_code=error.get("decline_code"),
        message=error.get("message"),
    )


def read_declined_charge(error: Mapping[str, Any], *, amount: int, currency: str) -> OffSessionCharge:
    """What a 402 card error of an off-session charge came to: `authentication_required` asks
    for the parent (requires_action), any other code is a decline."""
    code = error.get("code")
    intent = expanded(error.get("payment_intent"))
    return OffSessionCharge(
        outcome="requires_action" if code == "authentication_required" else "declined",
        payment_intent=_id(error.get("payment_intent")),
        charge_id=_id(error.get("charge")) or _id(intent.get("latest_charge")),
        amount=amount,
        currency=currency,
        code=code,
        decline_code=error.get("decline_code"),
        message=error.get("message"),
    )


def read_webhook_endpoint(e: Mapping[str, Any]) -> WebhookEndpoint:
    """A WebhookEndpoint from a webhook endpoint's JSON."""
    return WebhookEndpoint(
        id=e["id"],
        url=e.get("url") or "",
        enabled_events=tuple(e.get("enabled_events") or ()),
        api_version=e.get("api_version"),
        connect=e.get("application") is not None,
        enabled=e.get("status") == "enabled",
    )


def read_platform_account(account: Mapping[str, Any], spec: Mapping[str, Any]) -> PlatformAccount:
    """The platform's account from its JSON (GET /v1/account) and its country's spec's."""
    return PlatformAccount(
        id=account["id"],
        country=str(account.get("country") or "").upper(),
        default_currency=str(account.get("default_currency") or ""),
        payment_currencies=frozenset(spec.get("supported_payment_currencies") or ()),
        transfer_countries=frozenset(spec.get("supported_transfer_countries") or ()),
    )


WEBHOOK_TOLERANCE_S = 300  # Stripe's default: older signatures are replays; newer ones too (clock skew only)


def signed_at(signature: str) -> int:
    """The `t=` of a Stripe-Signature header; 0 when there is none (the SDK's check refuses it)."""
    for part in signature.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            return int(value)
    return 0


# Why the app expired a checkout, carried by the expire call's idempotency key: Stripe copies the
# key into the resulting event's `request.idempotency_key`. The `checkout.session.expired` webhook
# often arrives before the app has written its own cancellation (the parent's "Back" is then
# recorded as `payment_cancelled`, not as a plain expiry). Only holders of the API key can set it.
_EXPIRE_KEY = "tutorbook-expire:"


def session_path(checkout_id: str, action: str = "") -> str:
    """/v1/checkout/sessions/{id}[/action], the id quoted as the SDK quotes it."""
    path = f"/v1/checkout/sessions/{quote_plus(checkout_id)}"
    return f"{path}/{action}" if action else path


def expire_key(checkout_id: str, reason: str) -> str:
    """The idempotency key of the call expiring `checkout_id` for `reason` (see expiry_reason)."""
    return f"{_EXPIRE_KEY}{reason}:{checkout_id}"


def expiry_reason(event: Mapping[str, Any]) -> str | None:
    """The reason the app gave when it expired the checkout of this event; None if Stripe did."""
    request = event.get("request")  # an object, null, or (older API versions) a request id
    key = request.get("idempotency_key") if isinstance(request, dict) else None
    if not isinstance(key, str) or not key.startswith(_EXPIRE_KEY):
        return None
    return key[len(_EXPIRE_KEY) :].split(":", 1)[0]
