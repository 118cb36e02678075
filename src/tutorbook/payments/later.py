"""The gateway's calls for money that moves after a payment (part of `StripeGateway`, the gateway
split by use: `gateway.py` builds the client and holds the checkout, refund and Connect calls):

- separate charges and transfers: a package is charged to the platform, and each lesson delivered
  is transferred to the teacher later, funded by that charge (`source_transaction`) and grouped
  per purchase (`transfer_group`); a transfer taken back is a reversal;
- customers and saved cards: a card saved on Checkout (`setup_future_usage=off_session`) is
  charged later without the parent (`off_session=true`, `confirm=true`); Stripe's answer is an
  `OffSessionCharge`, never a card error raised at the caller.

Like `gateway.py`, the only other place the `stripe` SDK is called from (the
`stripe-through-the-gateway` import contract names both).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import stripe
from stripe.params import (
    CustomerCreateParams,
    PaymentIntentCreateParams,
    PaymentMethodListParams,
    TransferCreateParams,
    TransferCreateReversalParams,
    TransferListParams,
)

from tutorbook.bookings.checkout import Checkout
from tutorbook.payments import objects
from tutorbook.payments.checkout_request import checkout_params
from tutorbook.payments.checkout_request import post as post_checkout
from tutorbook.payments.http import mapped_errors
from tutorbook.payments.port import OffSessionCharge, Refused, Reversal, SavedCard, Transfer

__all__ = ["LaterCalls"]

LIST_PAGE = 100


class LaterCalls:
    """Transfers, reversals, customers, saved cards and off-session charges (a mixin of
    `StripeGateway`, which provides `client` and `_slot`)."""

    client: stripe.StripeClient
    _slot: Callable[[], contextlib.AbstractAsyncContextManager[None]]

    # -- separate charges and transfers ------------------------------------------------------

    def create_transfer_sync(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        source_transaction: str,
        transfer_group: str,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
    ) -> Transfer:
        """Send `amount` to a teacher's connected account out of the charge `source_transaction`
        (Stripe refuses more than is left of it after its refunds and earlier transfers: Refused);
        the key makes it happen once, whoever asks again."""
        params: TransferCreateParams = {
            "amount": amount,
            "currency": currency,
            "destination": destination,
            "source_transaction": source_transaction,
            "transfer_group": transfer_group,
            "metadata": dict(metadata or {}),
        }
        with _refusals():
            obj = self.client.v1.transfers.create(params=params, options={"idempotency_key": idempotency_key})
        return objects.read_transfer(obj.to_dict())

    def reverse_transfer_sync(self, *, transfer_id: str, amount: int, idempotency_key: str) -> Reversal:
        """Take `amount` of a transfer back from the teacher's account (Refused beyond what is left)."""
        params: TransferCreateReversalParams = {"amount": amount}
        with _refusals():
            obj = self.client.v1.transfers.reversals.create(
                transfer_id, params=params, options={"idempotency_key": idempotency_key}
            )
        return objects.read_reversal(obj.to_dict())

    def list_transfers_sync(self, *, transfer_group: str) -> list[Transfer]:
        """Every transfer of a group (a purchase's), newest first."""
        params: TransferListParams = {"transfer_group": transfer_group, "limit": LIST_PAGE}
        with mapped_errors():
            found = self.client.v1.transfers.list(params=params)
            return [objects.read_transfer(t.to_dict()) for t in found.auto_paging_iter()]

    # -- customers, saved cards, off-session charges -------------------------------------------

    async def create_customer(self, *, parent_id: str, email: str, name: str | None = None) -> str:
        """A Stripe Customer for a parent (whose cards are saved to it); idempotent per parent for
        Stripe's 24 hours, so the caller keeps the id it gets. Its id."""
        params: CustomerCreateParams = {"email": email, "metadata": {"parent_id": parent_id}}
        if name:
            params["name"] = name
        async with self._slot():
            with mapped_errors():
                obj = await self.client.v1.customers.create_async(
                    params=params, options={"idempotency_key": f"customer-{parent_id}"}
                )
        return obj.id

    def list_payment_methods_sync(self, customer: str) -> list[SavedCard]:
        """The customer's saved cards, newest first."""
        params: PaymentMethodListParams = {"customer": customer, "type": "card", "limit": LIST_PAGE}
        with mapped_errors():
            found = self.client.v1.payment_methods.list(params=params)
            return [objects.read_saved_card(m.to_dict()) for m in found.auto_paging_iter()]

    def charge_off_session_sync(
        self,
        *,
        customer: str,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
        destination: str | None = None,
        application_fee: int | None = None,
    ) -> OffSessionCharge:
        """Charge a saved card without the parent: succeeded, declined or requires_action (Stripe's
        402 card errors are outcomes here). Refused for a request Stripe will not take (a card
        detached or not the customer's); GatewayError when Stripe cannot be reached."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "payment_method": payment_method,
            "off_session": True,
            "confirm": True,
            "metadata": dict(metadata or {}),
        }
        if destination:  # a destination charge, as a lone booking's checkout (the teacher's share)
            params["transfer_data"] = {"destination": destination}
            if application_fee:
                params["application_fee_amount"] = application_fee
        try:
            with _refusals():
                obj = self.client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
        except _Declined as declined:
            return objects.read_declined_charge(declined.error, amount=amount, currency=currency)
        return objects.read_off_session_charge(obj.to_dict())


    # -- a weekly series' checkouts (issue #29) ------------------------------------------------

    async def create_series_checkout(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        product_name: str,
        customer: str | None,
        customer_email: str | None,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        destination: str | None = None,
        application_fee: int | None = None,
        save_card: bool = False,
        attempt: str | None = None,
    ) -> Checkout:
        """A weekly series lesson's Checkout, a booking's like `create_checkout` (its metadata, a
        destination charge): with the parent's `customer` and `save_card` (the first lesson), the
        card is saved for the off-session charges of the next ones
        (`payment_intent_data.setup_future_usage=off_session`); `attempt` names another checkout
        for the same lesson (its pay link opened again once the last one closed), its own key."""
        params = checkout_params(
            reference=booking_id,
            metadata={"booking_id": booking_id, "type": "session-booking"},
            amount=amount,
            currency=currency,
            product_name=product_name,
            success_url=success_url,
            cancel_url=cancel_url,
            expires_at=expires_at,
            customer_email=customer_email,
            customer=customer,
            destination=destination,
            application_fee=application_fee,
        )
        if save_card:
            params["payment_intent_data"]["setup_future_usage"] = "off_session"
        key = f"checkout-{booking_id}" + (f"-{attempt}" if attempt else "")
        return await post_checkout(self.client, self._slot, key=key, params=params)


class _Declined(Exception):
    """A card error, carrying Stripe's error object."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(error.get("message"))
        self.error = error


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Stripe's 4xx answers to a money-moving request: a card error (402) as `_Declined`, any
    other refusal (an unknown charge or account included) as `Refused` with Stripe's message; the
    rest mapped as every gateway call's."""
    with mapped_errors():
        try:
            yield
        except stripe.CardError as exc:
            body = exc.json_body if isinstance(exc.json_body, dict) else {}
            raise _Declined(dict(body.get("error") or {"code": exc.code, "message": str(exc)})) from exc
        except stripe.InvalidRequestError as exc:
            if isinstance(exc, stripe.IdempotencyError):
                raise
            raise Refused(exc.user_message or str(exc)) from exc
