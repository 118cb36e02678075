"""The only module that calls Stripe (`http.py`, the SDK's HTTP client it is built with, is the
other that imports `stripe`): Checkout Sessions, refunds, Connect, events, webhook signatures.

With TUTORBOOK_STRIPE_SECRET_KEY set it talks to Stripe; without it, to the bundled sandbox.
Nothing outside this module knows which. `StripeGateway` satisfies `port.PaymentGateway`, the
Protocol the rest of the product types it with; the errors and plain values it answers with live
in `port.py` and Stripe's JSON is read in `objects.py` (both re-exported here for the callers).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

import stripe
from stripe.params import (
    AccountCreateParams,
    AccountLinkCreateParams,
    PaymentIntentRetrieveParams,
    RefundCreateParams,
    RefundListParams,
)
from stripe.params.checkout import SessionListParams, SessionListParamsCreated

from tutorbook.bookings.checkout import Checkout, PaymentSplit
from tutorbook.config import Settings
from tutorbook.payments import checkout_request, objects
from tutorbook.payments.checkout_request import checkout_params
from tutorbook.payments.checkout_request import post as post_checkout
from tutorbook.payments.http import StripeHTTPClient, mapped_errors
from tutorbook.payments.later import LaterCalls
from tutorbook.payments.limiter import CallBound
from tutorbook.payments.objects import (
    WEBHOOK_TOLERANCE_S,
    account_from_event_object,
    checkout_from_event_object,
    expiry_reason,
)
from tutorbook.payments.port import (
    CheckoutNotFound,
    CheckoutNotOpen,
    CheckoutStatus,
    GatewayError,
    GatewayTimeout,
    InvalidWebhook,
    PlatformAccount,
    RefundRefused,
    RefundResult,
    Refused,
    WebhookEndpoint,
)
from tutorbook.payments.purchase_checkout import PurchaseCheckouts
from tutorbook.teachers.payouts import AccountState

# The errors and values callers name as `gw.…` (they live in port.py and objects.py).
__all__ = ["API_VERSION", "CheckoutNotFound", "CheckoutNotOpen", "CheckoutStatus", "GatewayError", "GatewayTimeout"]
__all__ += ["InvalidWebhook", "PaymentSplit", "PlatformAccount", "RefundRefused", "RefundResult", "Refused"]
__all__ += ["StripeGateway", "WebhookEndpoint", "account_from_event_object", "checkout_from_event_object"]
__all__ += ["expiry_reason"]

API_VERSION = "2026-10-28.endive"  # pinned; matches stripe 16.1's default
SANDBOX_KEY = "sk_test_sandbox"
LIST_PAGE = 100  # Stripe's largest page
# The metadata key of a Checkout Session's (and its PaymentIntent's) W3C traceparent, with tracing on.
TRACE_METADATA = checkout_request.TRACE_METADATA


class StripeGateway(PurchaseCheckouts, LaterCalls):
    """Async methods for request paths, sync ones for jobs; both through one StripeClient (a
    package's checkout: `purchase_checkout.py`; transfers, customers and off-session charges:
    `later.py`)."""

    def __init__(self, settings: Settings):
        self.webhook_secret = settings.stripe_webhook_secret
        self.connect_webhook_secret = settings.stripe_connect_webhook_secret
        self.timeout = settings.stripe_timeout_seconds
        self.bound = CallBound(
            floor=settings.stripe_max_concurrent_calls,
            ceiling=max(settings.stripe_max_concurrent_calls, settings.stripe_max_calls_in_flight),
        )
        self.http = StripeHTTPClient(
            timeout=self.timeout,
            connections=self.bound.ceiling,
            sync_connections=max(settings.stripe_max_concurrent_calls, settings.job_stripe_concurrency),
        )
        self.client = stripe.StripeClient(
            settings.stripe_secret_key or SANDBOX_KEY,
            stripe_version=API_VERSION,
            max_network_retries=settings.stripe_max_network_retries,
            http_client=self.http,
            base_addresses={"api": settings.sandbox_url} if settings.uses_sandbox else None,
        )

    async def aclose(self) -> None:
        """Close the running event loop's connections to Stripe (the app's shutdown)."""
        await self.http.close_async()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """At most `bound.limit` async calls in flight; the others wait here, within the timeout,
        rather than in httpcore's pool, whose bookkeeping costs O(waiting x connections)."""
        try:
            await self.bound.acquire(self.timeout)
        except TimeoutError as exc:
            raise GatewayTimeout("too many Stripe calls waiting") from exc
        started = time.monotonic()
        try:
            yield
        finally:
            self.bound.release(time.monotonic() - started)

    # -- Checkout Sessions -------------------------------------------------------------

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
    ) -> Checkout:
        """A hosted Checkout Session for one booking; idempotent per booking id. With a
        `destination` (the teacher's connected account) it is a destination charge: Stripe
        transfers the whole amount to the teacher and takes `application_fee` back from it."""
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
            destination=destination,
            application_fee=application_fee,
        )
        return await post_checkout(self.client, self._slot, key=f"checkout-{booking_id}", params=params)

    # A session is read as Stripe's JSON, a plain dict (the SDK's raw_request: its auth,
    # retries, idempotency and errors), not as a StripeObject tree: the tree for the ten fields
    # `objects.read_checkout` reads was ~87 `_convert_to_stripe_object` calls per expire, the
    # cancel page's dearest part (docs/PERFORMANCE.md, section 9, "wt/perf33"). The jobs' sync
    # calls do the same (like list_checkouts_sync): the expire job makes thousands of them.

    async def retrieve_checkout(self, checkout_id: str) -> Checkout:
        async with self._slot():
            with mapped_errors():
                answer = await self.client.raw_request_async("get", objects.session_path(checkout_id))
        return objects.read_checkout(answer.data)

    async def expire_checkout(self, checkout_id: str, *, reason: str) -> Checkout:
        """Expire an open session; CheckoutNotOpen if it is complete or expired already.
        `reason` travels in the idempotency key, so the `checkout.session.expired` event says why."""
        options = _expire_options(checkout_id, reason)
        path = objects.session_path(checkout_id, "expire")
        async with self._slot():
            with mapped_errors(not_open=True):
                answer = await self.client.raw_request_async("post", path, **options)
        return objects.read_checkout(answer.data)

    def retrieve_checkout_sync(self, checkout_id: str) -> Checkout:
        with mapped_errors():
            return objects.read_checkout(self.client.raw_request("get", objects.session_path(checkout_id)).data)

    def expire_checkout_sync(self, checkout_id: str, *, reason: str) -> Checkout:
        options = _expire_options(checkout_id, reason)
        with mapped_errors(not_open=True):
            path = objects.session_path(checkout_id, "expire")
            return objects.read_checkout(self.client.raw_request("post", path, **options).data)

    def list_checkouts_sync(
        self,
        *,
        created_since: datetime,
        created_until: datetime | None = None,
        status: CheckoutStatus | None = None,
    ) -> Iterator[Checkout]:
        """Every Checkout Session created in [`created_since`, `created_until`] (whole seconds,
        both ends included), of one `status` if given, newest first: Stripe's list endpoint, 100
        a page, each next page `starting_after` the last one's last session.

        The pages are read with the SDK's `raw_request` and kept as plain dicts: turning a page
        of 100 sessions into StripeObjects (what `sessions.list` and its auto-paging do) cost
        about 100 ms of CPU against 13 ms for the request and the JSON (measured against the
        sandbox), and the expire job lists 1,000 pages for 100,000 stale checkouts."""
        created: SessionListParamsCreated = {"gte": int(created_since.timestamp())}
        if created_until is not None:
            created["lte"] = int(created_until.timestamp())
        params: SessionListParams = {"created": created, "limit": LIST_PAGE}
        if status is not None:
            params["status"] = status
        while True:
            with mapped_errors():
                page = self.client.raw_request("get", "/v1/checkout/sessions", **params).data
            data = page.get("data") or []
            for obj in data:
                yield objects.read_checkout(obj)
            if not page.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    # -- Refunds -----------------------------------------------------------------------

    def refund_sync(
        self,
        *,
        payment_intent: str,
        amount: int,
        refund_key: str,
        booking_id: str,
        connect: bool = False,
        with_fee: bool = True,
    ) -> RefundResult:
        """Refund `amount` of a payment; the key makes retries safe. `connect` (a destination
        charge): pull the teacher's share back in proportion and, `with_fee` (it has an
        application fee: Stripe refuses refund_application_fee otherwise), return the fee in
        proportion."""
        params: RefundCreateParams = {
            "payment_intent": payment_intent,
            "amount": amount,
            "reason": "requested_by_customer",
            "metadata": {"booking_id": booking_id},
        }
        if connect:
            params["reverse_transfer"] = True
            if with_fee:
                params["refund_application_fee"] = True
        with mapped_errors(refund=True):
            obj = self.client.v1.refunds.create(params=params, options={"idempotency_key": refund_key})
        # Stripe always answers with a status; none would read as its "pending" (still processing).
        return RefundResult(id=obj.id, status=obj.status or "pending", amount=obj.amount)

    # -- Connect -----------------------------------------------------------------------

    def payment_split_sync(self, payment_intent: str) -> PaymentSplit | None:
        """How Stripe split a payment: its charge, transfer and application fee with their
        totals, and the refunds that reversed nothing; None before it is charged."""
        params: PaymentIntentRetrieveParams = {"expand": ["latest_charge.transfer", "latest_charge.application_fee"]}
        listing: RefundListParams = {"payment_intent": payment_intent, "limit": 100}
        with mapped_errors():
            intent = self.client.v1.payment_intents.retrieve(payment_intent, params=params)
            refunds = self.client.v1.refunds.list(params=listing)
            listed: list[Mapping[str, Any]] = [r.to_dict() for r in refunds.auto_paging_iter()]
        return objects.read_split(_as_dict(intent), listed)

    def destination_of_sync(self, payment_intent: str) -> tuple[bool, bool]:
        """(whether a payment is a destination charge, whether it has an application fee);
        (False, False) for an unknown payment."""
        try:
            with mapped_errors():
                intent = _as_dict(self.client.v1.payment_intents.retrieve(payment_intent))
        except CheckoutNotFound:
            return False, False
        destination = bool(objects.expanded(intent.get("transfer_data")).get("destination"))
        return destination, destination and bool(intent.get("application_fee_amount"))

    async def create_account(self, *, teacher_id: str, email: str, country: str) -> AccountState:
        """An Express connected account for a teacher; idempotent per teacher (for 24 hours, so
        the caller also keeps the first one it gets)."""
        params: AccountCreateParams = {
            "type": "express",
            "country": country,
            "email": email,
            "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
            "metadata": {"teacher_id": teacher_id},
        }
        async with self._slot():
            with mapped_errors():
                obj = await self.client.v1.accounts.create_async(
                    params=params, options={"idempotency_key": f"connect-account-{teacher_id}"}
                )
        return objects.read_account(_as_dict(obj))

    async def retrieve_account(self, account_id: str) -> AccountState:
        async with self._slot():
            with mapped_errors():
                answer = await self.client.v1.accounts.retrieve_async(account_id)
        return objects.read_account(_as_dict(answer))

    def retrieve_account_sync(self, account_id: str) -> AccountState:
        with mapped_errors():
            return objects.read_account(_as_dict(self.client.v1.accounts.retrieve(account_id)))

    async def create_onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        """The Stripe-hosted onboarding URL for an account (single use, short-lived)."""
        params: AccountLinkCreateParams = {
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": refresh_url,
            "return_url": return_url,
        }
        async with self._slot():
            with mapped_errors():
                link = await self.client.v1.account_links.create_async(params=params)
        return link.url

    # -- The operator's pre-flight (tutorbook stripe check) --------------------------------

    def webhook_endpoints_sync(self) -> list[WebhookEndpoint]:
        """Every webhook endpoint of the account."""
        out, params = [], {"limit": LIST_PAGE}
        while True:
            with mapped_errors():
                page = self.client.raw_request("get", "/v1/webhook_endpoints", **params).data
            data = page.get("data") or []
            out += [objects.read_webhook_endpoint(e) for e in data]
            if not page.get("has_more") or not data:
                return out
            params["starting_after"] = data[-1]["id"]

    def platform_account_sync(self) -> PlatformAccount:
        """The platform's own account (GET /v1/account) and its country's spec."""
        with mapped_errors():
            account = self.client.raw_request("get", "/v1/account").data
            country = str(account.get("country") or "").upper()
            spec = self.client.raw_request("get", f"/v1/country_specs/{quote_plus(country)}").data
        return objects.read_platform_account(account, spec)

    def connect_enabled_sync(self) -> bool:
        """Whether the platform has signed up for Connect: Stripe refuses to list connected
        accounts otherwise."""
        try:
            self.client.raw_request("get", "/v1/accounts", limit=1)
        except (stripe.InvalidRequestError, stripe.PermissionError):
            return False
        except stripe.StripeError as exc:
            raise GatewayError(str(exc)) from exc
        return True

    # -- Webhooks ----------------------------------------------------------------------

    def construct_event(self, payload: bytes, signature: str | None, *, connect: bool = False) -> dict[str, Any]:
        """The verified event as a dict; InvalidWebhook otherwise (checked before parsing). `connect`:
        it came to the Connect endpoint, whose events Stripe signs with that endpoint's own secret.

        The SDK's own signature check (stripe.WebhookSignature, 5-minute tolerance), then plain
        json.loads: construct_event would build a StripeObject tree only to be turned back into a
        dict, 1.3-2.9 ms a webhook (docs/PERFORMANCE.md)."""
        if not signature:
            raise InvalidWebhook("missing Stripe-Signature")
        if objects.signed_at(signature) > time.time() + WEBHOOK_TOLERANCE_S:
            # The SDK refuses only old signatures; one dated ahead would stay replayable for that long.
            raise InvalidWebhook("signature timestamp in the future")
        secret = self.connect_webhook_secret if connect else self.webhook_secret
        if not secret:
            raise InvalidWebhook("no signing secret configured for this endpoint")
        try:
            stripe.WebhookSignature.verify_header(payload, signature, secret, WEBHOOK_TOLERANCE_S)
            event = json.loads(payload)
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(str(exc)) from exc
        except ValueError as exc:
            raise InvalidWebhook("invalid payload") from exc
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise InvalidWebhook("not an event")
        return event


def _as_dict(obj: Mapping[str, Any] | stripe.StripeObject) -> Mapping[str, Any]:
    return obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj


def _expire_options(checkout_id: str, reason: str) -> stripe.RequestOptions:
    return {"idempotency_key": objects.expire_key(checkout_id, reason)}
