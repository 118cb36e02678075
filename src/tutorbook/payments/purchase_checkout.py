"""The gateway's split for lesson packages (issue #28): a package's Checkout Session, charged to
the platform ("separate charges and transfers": no destination, no application fee), its payment
intent in a `transfer_group` of its own so each lesson's transfer to the teacher can name it.
A mixin of `StripeGateway` (it uses the gateway's client and its bound on calls in flight);
nothing here imports the SDK."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from tutorbook.bookings.checkout import Checkout
from tutorbook.payments.checkout_request import checkout_params
from tutorbook.payments.checkout_request import post as post_checkout


class PurchaseCheckouts:
    """`create_purchase_checkout`, through the gateway's `client` (its stripe.StripeClient) and
    `_slot` (its bound on Stripe calls in flight)."""

    async def create_purchase_checkout(
        self,
        *,
        purchase_id: str,
        amount: int,
        currency: str,
        product_name: str,
        customer_email: str | None,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        transfer_group: str,
    ) -> Checkout:
        """A hosted Checkout Session for one package purchase; idempotent per purchase id. Its
        metadata says `type: package-purchase`, which the webhook and the reconcile job read."""
        params = checkout_params(
            reference=purchase_id,
            metadata={"purchase_id": purchase_id, "type": "package-purchase"},
            amount=amount,
            currency=currency,
            product_name=product_name,
            success_url=success_url,
            cancel_url=cancel_url,
            expires_at=expires_at,
            customer_email=customer_email,
        )
        params["payment_intent_data"]["transfer_group"] = transfer_group
        client: Any = getattr(self, "client")  # noqa: B009  (the gateway's; typed there)
        slot: Callable[[], AbstractAsyncContextManager[None]] = getattr(self, "_slot")  # noqa: B009
        return await post_checkout(client, slot, key=f"purchase-checkout-{purchase_id}", params=params)


__all__ = ["PurchaseCheckouts"]
