"""The gateway's customers and saved cards (weekly series, issue #29): a Stripe Customer for a
parent, the cards the series' first checkout saved to it, and an off-session charge of one.

A part of `StripeGateway` (which inherits it), kept apart so `gateway.py` stays one screenful per
topic; like the rest of the gateway it answers with `port.py`'s plain values and errors (the
`stripe-through-the-gateway` contract lists it beside the gateway). Its requests go through the
gateway's StripeClient as raw requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tutorbook.payments.http import mapped_errors
from tutorbook.payments.port import CardDeclined, ChargeStatus, OffSessionCharge

if TYPE_CHECKING:
    import stripe

# PaymentIntent statuses an off-session charge may end in, as the series reads them.
_WAITING_FOR_PARENT = frozenset({"requires_action", "requires_payment_method", "requires_confirmation"})


class SavedCards:
    """Customers, their saved cards and off-session charges, through the gateway's `client`."""

    client: stripe.StripeClient  # the gateway's

    @staticmethod
    def for_series(
        params: Any, *, booking_id: str, customer: str | None, save_card: bool, attempt: str | None
    ) -> str:
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

    async def create_customer(self, *, email: str, name: str, parent_id: str) -> str:
        """A Customer for the parent (idempotent per parent); its id."""
        params = {"email": email, "name": name[:250], "metadata": {"parent_id": parent_id}}
        with mapped_errors():
            answer = await self.client.raw_request_async(
                "post", "/v1/customers", idempotency_key=f"customer-{parent_id}", **params
            )
        return str(answer.data["id"])

    def list_payment_methods_sync(self, customer: str) -> list[str]:
        """The ids of the cards saved to `customer`, newest first (as Stripe lists them)."""
        with mapped_errors():
            page = self.client.raw_request("get", "/v1/payment_methods", customer=customer, type="card", limit=10).data
        return [str(pm["id"]) for pm in page.get("data", [])]

    def charge_off_session_sync(
        self,
        *,
        customer: str,
        payment_method: str,
        amount: int,
        currency: str,
        booking_id: str,
        destination: str | None = None,
        application_fee: int | None = None,
    ) -> OffSessionCharge:
        """Charge a saved card with the parent away (idempotent per booking): succeeded, declined,
        or requires_action (the bank wants the parent to authenticate)."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "payment_method": payment_method,
            "off_session": True,
            "confirm": True,
            "metadata": {"booking_id": booking_id, "type": "session-booking"},
        }
        if destination:
            params["transfer_data"] = {"destination": destination}
            if application_fee:
                params["application_fee_amount"] = application_fee
        try:
            with mapped_errors(card=True):
                intent = self.client.raw_request(
                    "post", "/v1/payment_intents", idempotency_key=f"series-charge-{booking_id}", **params
                ).data
        except CardDeclined as exc:
            status: ChargeStatus = "requires_action" if exc.code == "authentication_required" else "declined"
            return OffSessionCharge(status, exc.payment_intent, str(exc))
        return _charge(intent)


def _charge(intent: Mapping[str, Any]) -> OffSessionCharge:
    status = str(intent.get("status"))
    if status == "succeeded":
        return OffSessionCharge("succeeded", str(intent["id"]))
    if status in _WAITING_FOR_PARENT:
        return OffSessionCharge("requires_action", str(intent["id"]), status)
    return OffSessionCharge("declined", str(intent["id"]), status)
