"""What the product asks of a payment provider: the `PaymentGateway` Protocol, its errors and the
plain values it answers with. No Stripe here.

`StripeGateway` (`gateway.py`, the only module that calls Stripe) satisfies it, and so does the
fake the service-level tests drive the use cases with (`tests/service/fake_gateway.py`); mypy checks
both. `Services.gateway`, which every flow, job and route reaches the provider through, is typed
with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from tutorbook.bookings.checkout import Checkout, PaymentSplit
from tutorbook.teachers.payouts import AccountState

__all__ = [
    "CheckoutNotFound",
    "CheckoutNotOpen",
    "CheckoutStatus",
    "ChargeOutcome",
    "GatewayError",
    "GatewayTimeout",
    "InvalidWebhook",
    "OffSessionCharge",
    "PaymentGateway",
    "PlatformAccount",
    "RefundRefused",
    "RefundResult",
    "Refused",
    "Reversal",
    "SavedCard",
    "Transfer",
    "WebhookEndpoint",
]

CheckoutStatus = Literal["open", "complete", "expired"]


class GatewayError(Exception):
    """Stripe could not be used (network, timeout, 5xx, auth)."""


class GatewayTimeout(GatewayError):
    """Stripe did not answer within the configured timeout."""


class Refused(GatewayError):
    """Stripe answered and refused the request (a 4xx such as an amount below its minimum);
    the message is Stripe's, fit to show. Retrying the same request cannot help."""


class CheckoutNotFound(Exception):
    """Stripe has no such Checkout Session."""


class CheckoutNotOpen(Exception):
    """The Checkout Session is complete or expired already."""


class RefundRefused(Exception):
    """Stripe refused the refund (already refunded, nothing to refund)."""


class InvalidWebhook(Exception):
    """Bad signature, stale timestamp or unreadable payload."""


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    enabled_events: tuple[str, ...]
    api_version: str | None  # None: the account's default version
    connect: bool  # receives connected accounts' events (its `application` is set)
    enabled: bool


@dataclass(frozen=True)
class PlatformAccount:
    id: str
    country: str
    default_currency: str
    payment_currencies: frozenset[str]  # what the country may charge in (its country spec)
    transfer_countries: frozenset[str]  # where its destination charges may transfer to


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str
    amount: int


@dataclass(frozen=True)
class Transfer:
    """Money sent to a teacher's connected account (separate charges and transfers)."""

    id: str
    amount: int
    currency: str
    destination: str
    source_transaction: str | None  # the charge that funds it
    transfer_group: str | None
    amount_reversed: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reversal:
    """Part (or all) of a transfer taken back from the teacher's account."""

    id: str
    transfer_id: str
    amount: int


@dataclass(frozen=True)
class SavedCard:
    """A card saved to a Stripe Customer for later (off-session) charges."""

    id: str  # the PaymentMethod's
    customer: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


ChargeOutcome = Literal["succeeded", "declined", "requires_action"]


@dataclass(frozen=True)
class OffSessionCharge:
    """What charging a saved card without the parent came to: `succeeded` (with its payment intent
    and charge), `declined` (Stripe's `card_declined` or another card error: another card is
    needed) or `requires_action` (`authentication_required`: the parent must pay on-session)."""

    outcome: ChargeOutcome
    payment_intent: str | None
    charge_id: str | None
    amount: int
    currency: str
    code: str | None = None  # Stripe's error code (card_declined, authentication_required, ...)
    decline_code: str | None = None
    message: str | None = None  # Stripe's, fit to show the parent

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


class PaymentGateway(Protocol):
    """The payment provider as the flows, jobs and routes use it: async methods for request
    paths, `_sync` ones for jobs and follow-ups (worker threads). Each answers with a plain value
    or raises one of this module's errors; see `StripeGateway` for what each call does at Stripe."""

    async def aclose(self) -> None: ...

    # -- Checkout Sessions

    async def create_checkout(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        product_name: str,
        customer_email: str | None,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        destination: str | None = None,
        application_fee: int | None = None,
    ) -> Checkout: ...

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
    ) -> Checkout: ...

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
    ) -> Checkout: ...

    async def retrieve_checkout(self, checkout_id: str) -> Checkout: ...

    async def expire_checkout(self, checkout_id: str, *, reason: str) -> Checkout: ...

    def retrieve_checkout_sync(self, checkout_id: str) -> Checkout: ...

    def expire_checkout_sync(self, checkout_id: str, *, reason: str) -> Checkout: ...

    def list_checkouts_sync(
        self,
        *,
        created_since: datetime,
        created_until: datetime | None = None,
        status: CheckoutStatus | None = None,
    ) -> Iterator[Checkout]: ...

    # -- Refunds and Connect

    def refund_sync(
        self,
        *,
        payment_intent: str,
        amount: int,
        refund_key: str,
        booking_id: str,
        connect: bool = False,
        with_fee: bool = True,
    ) -> RefundResult: ...

    def payment_split_sync(self, payment_intent: str) -> PaymentSplit | None: ...

    def destination_of_sync(self, payment_intent: str) -> tuple[bool, bool]: ...

    async def create_account(self, *, teacher_id: str, email: str, country: str) -> AccountState: ...

    async def retrieve_account(self, account_id: str) -> AccountState: ...

    def retrieve_account_sync(self, account_id: str) -> AccountState: ...

    async def create_onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str: ...

    # -- Separate charges and transfers (a package's lessons paid to the teacher one by one)

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
    ) -> Transfer: ...

    def reverse_transfer_sync(self, *, transfer_id: str, amount: int, idempotency_key: str) -> Reversal: ...

    def list_transfers_sync(self, *, transfer_group: str) -> list[Transfer]: ...

    # -- Customers, saved cards, off-session charges (a weekly series' later lessons, issue #29)

    async def create_customer(self, *, parent_id: str, email: str, name: str | None = None) -> str: ...

    def list_payment_methods_sync(self, customer: str) -> list[SavedCard]: ...

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
    ) -> OffSessionCharge: ...

    # -- The operator's pre-flight and webhooks

    def webhook_endpoints_sync(self) -> list[WebhookEndpoint]: ...

    def platform_account_sync(self) -> PlatformAccount: ...

    def connect_enabled_sync(self) -> bool: ...

    def construct_event(self, payload: bytes, signature: str | None, *, connect: bool = False) -> dict[str, Any]: ...
