"""What the booking rules need to know of a Stripe Checkout Session, as a plain value.

`tutorbook.payments.gateway` builds it from Stripe's objects; nothing here knows Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The placeholder Stripe replaces with the Checkout Session's id in the success and cancel URLs.
CHECKOUT_TEMPLATE = "{CHECKOUT_SESSION_ID}"


@dataclass(frozen=True)
class Checkout:
    """What Tutorbook needs of a Checkout Session."""

    id: str
    status: str  # open | complete | expired
    payment_status: str  # unpaid | paid | no_payment_required
    url: str | None
    payment_intent: str | None
    amount_total: int | None
    currency: str | None
    client_reference_id: str | None
    metadata: dict[str, Any]
    expires_at: datetime | None
    created: datetime | None

    @property
    def paid(self) -> bool:
        return self.payment_status in ("paid", "no_payment_required")

    @property
    def booking_ref(self) -> str | None:
        return (self.metadata or {}).get("booking_id") or self.client_reference_id


@dataclass(frozen=True)
class PaymentSplit:
    """How Stripe split a destination charge: the charge, its transfer to the teacher's account
    and the platform's application fee, with the totals reversed and refunded so far."""

    charge_id: str
    destination: str | None
    transfer_id: str | None
    transfer_amount: int
    transfer_reversed: int
    fee_id: str | None
    fee_amount: int
    fee_refunded: int
    refunded: int  # of the charge
    refunds_without_reversal: tuple[str, ...] = ()  # refund ids that reversed nothing of the transfer
    amount: int = 0  # the charge's (what Stripe says was paid)
