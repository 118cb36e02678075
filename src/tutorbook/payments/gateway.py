"""The only module that imports `stripe`: Checkout Sessions, refunds, events, webhook signatures.

With TUTORBOOK_STRIPE_SECRET_KEY set it talks to Stripe; without it, to the bundled sandbox.
Nothing outside this module knows which.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote_plus

import aiohttp
import httpx
import stripe
from stripe.params import (
    AccountCreateParams,
    AccountLinkCreateParams,
    PaymentIntentRetrieveParams,
    RefundCreateParams,
    RefundListParams,
)
from stripe.params.checkout import SessionCreateParams, SessionListParams, SessionListParamsCreated

from tutorbook import tracing
from tutorbook.bookings.checkout import Checkout, PaymentSplit
from tutorbook.config import Settings
from tutorbook.loops import PerLoop
from tutorbook.teachers.payouts import AccountState

__all__ = ["AccountState", "Checkout", "PaymentSplit", "StripeGateway"]

log = logging.getLogger("tutorbook.stripe")

API_VERSION = "2026-10-28.endive"  # pinned; matches stripe 16.1's default
SANDBOX_KEY = "sk_test_sandbox"
LIST_PAGE = 100  # Stripe's largest page
CheckoutStatus = Literal["open", "complete", "expired"]
# The metadata key of a Checkout Session's (and its PaymentIntent's) W3C traceparent, with tracing on.
TRACE_METADATA = "traceparent"


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


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def _checkout(obj: Mapping[str, Any] | stripe.StripeObject) -> Checkout:
    d = obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj
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
    return _checkout(obj)


def _as_dict(obj: Mapping[str, Any] | stripe.StripeObject) -> Mapping[str, Any]:
    return obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj


def _account(obj: Mapping[str, Any] | stripe.StripeObject) -> AccountState:
    d = _as_dict(obj)
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
    return _account(obj)


def _id(value: object) -> str | None:
    """The id of an expanded object, or the id itself."""
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def _expanded(value: object) -> Mapping[str, Any]:
    """An expanded object, or an empty one where Stripe gave only an id (or nothing)."""
    return value if isinstance(value, Mapping) else {}


def _split(intent: Mapping[str, Any] | stripe.StripeObject, refunds: list[Mapping[str, Any]]) -> PaymentSplit | None:
    d = _as_dict(intent)
    charge = d.get("latest_charge")
    if not isinstance(charge, Mapping):
        return None
    transfer = _expanded(charge.get("transfer"))
    fee = _expanded(charge.get("application_fee"))
    without = (
        tuple(r["id"] for r in refunds if r.get("status") != "failed" and not _id(r.get("transfer_reversal")))
        if transfer
        else ()
    )
    return PaymentSplit(
        charge_id=charge["id"],
        destination=_expanded(d.get("transfer_data")).get("destination"),
        transfer_id=transfer.get("id"),
        transfer_amount=int(transfer.get("amount") or 0),
        transfer_reversed=int(transfer.get("amount_reversed") or 0),
        fee_id=fee.get("id"),
        fee_amount=int(fee.get("amount") or 0),
        fee_refunded=int(fee.get("amount_refunded") or 0),
        refunded=int(charge.get("amount_refunded") or 0),
        refunds_without_reversal=without,
    )


class StripeGateway:
    """Async methods for request paths, sync ones for jobs; both through one StripeClient."""

    def __init__(self, settings: Settings):
        self.webhook_secret = settings.stripe_webhook_secret
        self.connect_webhook_secret = settings.stripe_connect_webhook_secret
        self.timeout = settings.stripe_timeout_seconds
        self.bound = CallBound(
            floor=settings.stripe_max_concurrent_calls,
            ceiling=max(settings.stripe_max_concurrent_calls, settings.stripe_max_calls_in_flight),
        )
        self.http = _StripeHTTPClient(
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
        params: SessionCreateParams = {
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
            "client_reference_id": booking_id,
            "metadata": {"booking_id": booking_id, "type": "session-booking"},
            "payment_intent_data": {"metadata": {"booking_id": booking_id, "type": "session-booking"}},
            "expires_at": int(expires_at.timestamp()),
        }
        if customer_email:
            params["customer_email"] = customer_email
        trace = tracing.traceparent()
        if trace:  # the webhooks of this payment continue the booking's trace (docs/operations.md, "Tracing")
            params["metadata"][TRACE_METADATA] = trace
            params["payment_intent_data"]["metadata"][TRACE_METADATA] = trace
        if destination:
            params["payment_intent_data"] = {
                **params["payment_intent_data"],
                "transfer_data": {"destination": destination},
            }
            if application_fee:  # no fee (0 %): no application fee object, nothing to refund later
                params["payment_intent_data"]["application_fee_amount"] = application_fee
        # raw_request: the SDK's own request (auth, retries, idempotency, errors), answered as a
        # plain dict: building a StripeObject tree for a session we read ten fields of cost about
        # a tenth of a booking's CPU (15.7 -> 14.2 ms, docs/PERFORMANCE.md, section 2).
        async with self._slot():
            with _mapped_errors():
                answer = await self.client.raw_request_async(
                    "post", "/v1/checkout/sessions", idempotency_key=f"checkout-{booking_id}", **params
                )
        return _checkout(answer.data)

    async def retrieve_checkout(self, checkout_id: str) -> Checkout:
        async with self._slot():
            with _mapped_errors():
                return _checkout(await self.client.v1.checkout.sessions.retrieve_async(checkout_id))

    async def expire_checkout(self, checkout_id: str, *, reason: str) -> Checkout:
        """Expire an open session; CheckoutNotOpen if it is complete or expired already.
        `reason` travels in the idempotency key, so the `checkout.session.expired` event says why."""
        options = _expire_options(checkout_id, reason)
        async with self._slot():
            with _mapped_errors(not_open=True):
                return _checkout(await self.client.v1.checkout.sessions.expire_async(checkout_id, options=options))

    # The jobs' sync calls read Stripe's JSON as plain dicts (the SDK's raw_request), like
    # list_checkouts_sync: a StripeObject costs a third of such a call's CPU, and the expire job
    # makes thousands of them in one process.

    def retrieve_checkout_sync(self, checkout_id: str) -> Checkout:
        with _mapped_errors():
            return _checkout(self.client.raw_request("get", _session_path(checkout_id)).data)

    def expire_checkout_sync(self, checkout_id: str, *, reason: str) -> Checkout:
        options = _expire_options(checkout_id, reason)
        with _mapped_errors(not_open=True):
            return _checkout(self.client.raw_request("post", _session_path(checkout_id, "expire"), **options).data)

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
            with _mapped_errors():
                page = self.client.raw_request("get", "/v1/checkout/sessions", **params).data
            data = page.get("data") or []
            for obj in data:
                yield _checkout(obj)
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
        with _mapped_errors(refund=True):
            obj = self.client.v1.refunds.create(params=params, options={"idempotency_key": refund_key})
        # Stripe always answers with a status; none would read as its "pending" (still processing).
        return RefundResult(id=obj.id, status=obj.status or "pending", amount=obj.amount)

    # -- Connect -----------------------------------------------------------------------

    def payment_split_sync(self, payment_intent: str) -> PaymentSplit | None:
        """How Stripe split a payment: its charge, transfer and application fee with their
        totals, and the refunds that reversed nothing; None before it is charged."""
        params: PaymentIntentRetrieveParams = {"expand": ["latest_charge.transfer", "latest_charge.application_fee"]}
        listing: RefundListParams = {"payment_intent": payment_intent, "limit": 100}
        with _mapped_errors():
            intent = self.client.v1.payment_intents.retrieve(payment_intent, params=params)
            refunds = self.client.v1.refunds.list(params=listing)
            listed: list[Mapping[str, Any]] = [r.to_dict() for r in refunds.auto_paging_iter()]
        return _split(intent, listed)

    def is_destination_charge_sync(self, payment_intent: str) -> bool:
        """Whether a payment transfers to a connected account (so a refund of it should pull
        that share back); False for an unknown payment."""
        return self.destination_of_sync(payment_intent)[0]

    def destination_of_sync(self, payment_intent: str) -> tuple[bool, bool]:
        """(whether a payment is a destination charge, whether it has an application fee);
        (False, False) for an unknown payment."""
        try:
            with _mapped_errors():
                intent = _as_dict(self.client.v1.payment_intents.retrieve(payment_intent))
        except CheckoutNotFound:
            return False, False
        destination = bool(_expanded(intent.get("transfer_data")).get("destination"))
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
            with _mapped_errors():
                obj = await self.client.v1.accounts.create_async(
                    params=params, options={"idempotency_key": f"connect-account-{teacher_id}"}
                )
        return _account(obj)

    async def retrieve_account(self, account_id: str) -> AccountState:
        async with self._slot():
            with _mapped_errors():
                return _account(await self.client.v1.accounts.retrieve_async(account_id))

    def retrieve_account_sync(self, account_id: str) -> AccountState:
        with _mapped_errors():
            return _account(self.client.v1.accounts.retrieve(account_id))

    async def create_onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        """The Stripe-hosted onboarding URL for an account (single use, short-lived)."""
        params: AccountLinkCreateParams = {
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": refresh_url,
            "return_url": return_url,
        }
        async with self._slot():
            with _mapped_errors():
                link = await self.client.v1.account_links.create_async(params=params)
        return link.url

    # -- The operator's pre-flight (tutorbook stripe check) --------------------------------

    def webhook_endpoints_sync(self) -> list[WebhookEndpoint]:
        """Every webhook endpoint of the account."""
        out, params = [], {"limit": LIST_PAGE}
        while True:
            with _mapped_errors():
                page = self.client.raw_request("get", "/v1/webhook_endpoints", **params).data
            data = page.get("data") or []
            out += [
                WebhookEndpoint(
                    id=e["id"],
                    url=e.get("url") or "",
                    enabled_events=tuple(e.get("enabled_events") or ()),
                    api_version=e.get("api_version"),
                    connect=e.get("application") is not None,
                    enabled=e.get("status") == "enabled",
                )
                for e in data
            ]
            if not page.get("has_more") or not data:
                return out
            params["starting_after"] = data[-1]["id"]

    def platform_account_sync(self) -> PlatformAccount:
        """The platform's own account (GET /v1/account) and its country's spec."""
        with _mapped_errors():
            account = self.client.raw_request("get", "/v1/account").data
            country = str(account.get("country") or "").upper()
            spec = self.client.raw_request("get", f"/v1/country_specs/{quote_plus(country)}").data
        return PlatformAccount(
            id=account["id"],
            country=country,
            default_currency=str(account.get("default_currency") or ""),
            payment_currencies=frozenset(spec.get("supported_payment_currencies") or ()),
            transfer_countries=frozenset(spec.get("supported_transfer_countries") or ()),
        )

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
        if _signed_at(signature) > time.time() + WEBHOOK_TOLERANCE_S:
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


WEBHOOK_TOLERANCE_S = 300  # Stripe's default: older signatures are replays; newer ones too (clock skew only)


def _signed_at(signature: str) -> int:
    """The `t=` of a Stripe-Signature header; 0 when there is none (the SDK's check refuses it)."""
    for part in signature.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            return int(value)
    return 0


# Why Stripe calls in flight are bounded (CallBound): with httpx's defaults (100 connections, 20
# kept idle) every call beyond 20 opened and dropped its own connection, and httpcore's pool
# bookkeeping grows with connections x queued requests: together most of a booking's CPU at 100
# concurrent parents (docs/PERFORMANCE.md, section 1). The calls wait in the gateway instead, and
# the pool keeps a connection for every call that may be in flight. The bound follows what the
# process does (CallBound: 1.5 x calls completed a second x their latency, between
# TUTORBOOK_STRIPE_MAX_CONCURRENT_CALLS and TUTORBOOK_STRIPE_MAX_CALLS_IN_FLIGHT), so it never caps
# a process below what its CPU can do.


class CallBound:
    """How many Stripe calls may be in flight at once, by Little's law: in flight = the rate calls
    complete at x how long each takes, both measured (moving averages), times HEADROOM, never
    fewer than `floor` nor more than `ceiling`.

    While the bound holds calls back, they complete at limit / latency, so the formula asks for
    HEADROOM x limit: the bound grows by half each second until it no longer binds, and then follows
    what the process really does. So it never caps a process below what its CPU can do (a fixed
    24 capped one at 24 / 0.3 s = 80 calls/s at Stripe's usual latency), and it does not open a
    connection per waiting request either: each call in flight beyond what the CPU can use only
    adds httpcore's pool bookkeeping (docs/PERFORMANCE.md §1, §7). The count of calls in flight is
    per event loop, since the waiters' futures belong to one."""

    SMOOTHING = 0.1  # weight of the newest call's duration in the latency's moving average
    RATE_SMOOTHING = 0.5  # weight of the newest one-second count in the rate's moving average
    HEADROOM = 1.5

    def __init__(self, *, floor: int, ceiling: int):
        self.floor, self.ceiling = floor, ceiling
        self.latency: float | None = None  # seconds a call takes
        self.rate: float | None = None  # calls completed a second
        self._loops: PerLoop[_Waiting] = PerLoop(_Waiting)
        self._window_start = time.monotonic()
        self._window_done = 0

    @property
    def limit(self) -> int:
        if self.latency is None or self.rate is None:
            return self.floor
        return max(self.floor, min(self.ceiling, math.ceil(self.HEADROOM * self.rate * self.latency)))

    def _count(self, seconds: float) -> None:
        self.latency = seconds if self.latency is None else self.latency + self.SMOOTHING * (seconds - self.latency)
        self._window_done += 1
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            sample = self._window_done / elapsed
            self.rate = sample if self.rate is None else self.rate + self.RATE_SMOOTHING * (sample - self.rate)
            self._window_start, self._window_done = now, 0

    def _state(self) -> _Waiting:
        return self._loops.get()

    @property
    def in_flight(self) -> int:
        return self._state().in_flight

    async def acquire(self, timeout: float) -> None:
        """A slot, or TimeoutError after `timeout` seconds of waiting for one."""
        state = self._state()
        if state.in_flight < self.limit and not state.waiters:
            state.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._give_back(state)  # granted just as the wait ended: hand it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    state.waiters.remove(waiter)
            raise

    def release(self, seconds: float) -> None:
        """Free a slot; `seconds` is how long the call took."""
        self._count(seconds)
        self._give_back(self._state())

    def _give_back(self, state: _Waiting) -> None:
        state.in_flight -= 1
        while state.waiters and state.in_flight < self.limit:
            waiter = state.waiters.popleft()
            if not waiter.done():
                state.in_flight += 1
                waiter.set_result(None)


@dataclass
class _Waiting:
    in_flight: int = 0
    waiters: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)


class _StripeHTTPClient(stripe.HTTPXClient):
    """The SDK's HTTP client with sized connection pools. Sync calls (the jobs' threads; the
    expire job makes TUTORBOOK_JOB_STRIPE_CONCURRENCY at once) go over httpx, keeping
    `sync_connections`; async calls (the request paths) over the SDK's aiohttp client, keeping
    `connections`, one per event loop (an aiohttp session belongs to the loop it was opened on).
    aiohttp parses HTTP in C: a call costs the caller a quarter of the CPU it did over
    httpx/httpcore, and a booking 1 ms less (5.39 -> 4.37 ms; docs/PERFORMANCE.md, section 7).
    httpx keeps 20 idle connections by default, so every sync call beyond 20 in flight would open
    and drop its own."""

    def __init__(self, *, timeout: float, connections: int, sync_connections: int):
        super().__init__(timeout=timeout, allow_sync_methods=True)
        self._ssl = ssl.create_default_context(cafile=stripe.ca_bundle_path) if self._verify_ssl_certs else False
        limits = httpx.Limits(max_connections=sync_connections, max_keepalive_connections=sync_connections)
        self._client = httpx.Client(verify=self._ssl, limits=limits)
        self.connections, self.seconds = connections, timeout
        self.per_loop: PerLoop[stripe.AIOHTTPClient] = PerLoop(self._new_async_client)

    def _new_async_client(self) -> stripe.AIOHTTPClient:
        return stripe.AIOHTTPClient(
            timeout=aiohttp.ClientTimeout(total=self.seconds),
            connector=aiohttp.TCPConnector(limit=self.connections, ssl=self._ssl),
        )

    def _async_client(self) -> stripe.AIOHTTPClient:
        return self.per_loop.get()

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            return await self._async_client().request_async(method, url, headers, post_data)
        except stripe.APIConnectionError:
            raise
        except Exception as exc:  # noqa: BLE001 - AIOHTTPClient reads the body outside its own mapping
            self._handle_request_error(exc)  # an APIConnectionError, retried like any other

    async def request_stream_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[Any, int, Mapping[str, str]]:
        return await self._async_client().request_stream_async(method, url, headers, post_data)

    def sleep_async(self, secs: float) -> Any:
        return asyncio.sleep(secs)

    async def close_async(self) -> None:
        """Close the running loop's aiohttp session (the app's shutdown)."""
        found = self.per_loop.pop()
        if found is not None:
            await found.close_async()  # type: ignore[no-untyped-call]


class _mapped_errors:
    """Translate SDK exceptions into the gateway's own, so callers never import stripe."""

    def __init__(self, *, not_open: bool = False, refund: bool = False):
        self.not_open, self.refund = not_open, refund

    def __enter__(self) -> _mapped_errors:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None:
            return False
        if isinstance(exc, stripe.InvalidRequestError) and not isinstance(exc, stripe.IdempotencyError):
            if exc.http_status == 404 or exc.code == "resource_missing":
                raise CheckoutNotFound(str(exc)) from exc
            if self.not_open:
                raise CheckoutNotOpen(str(exc)) from exc
            if self.refund:
                raise RefundRefused(str(exc)) from exc
            log.warning("stripe refused a request", extra={"error": str(exc)[:200], "code": exc.code})
            raise Refused(exc.user_message or str(exc)) from exc
        if isinstance(exc, stripe.APIConnectionError):
            log.warning("stripe unreachable", extra={"error": str(exc)[:200]})
            text = str(exc).lower()
            if "timed out" in text or "timeout" in text:
                raise GatewayTimeout(str(exc)) from exc
            raise GatewayError(str(exc)) from exc
        if isinstance(exc, stripe.StripeError):
            log.warning(
                "stripe error", extra={"error": str(exc)[:200], "http_status": getattr(exc, "http_status", None)}
            )
            raise GatewayError(str(exc)) from exc
        return False


# Why the app expired a checkout, carried by the expire call's idempotency key: Stripe copies the
# key into the resulting event's `request.idempotency_key`. The `checkout.session.expired` webhook
# often arrives before the app has written its own cancellation (the parent's "Back" is then
# recorded as `payment_cancelled`, not as a plain expiry). Only holders of the API key can set it.
_EXPIRE_KEY = "tutorbook-expire:"


def _session_path(checkout_id: str, action: str = "") -> str:
    """/v1/checkout/sessions/{id}[/action], the id quoted as the SDK quotes it."""
    path = f"/v1/checkout/sessions/{quote_plus(checkout_id)}"
    return f"{path}/{action}" if action else path


def _expire_options(checkout_id: str, reason: str) -> stripe.RequestOptions:
    return {"idempotency_key": f"{_EXPIRE_KEY}{reason}:{checkout_id}"}


def expiry_reason(event: Mapping[str, Any]) -> str | None:
    """The reason the app gave when it expired the checkout of this event; None if Stripe did."""
    request = event.get("request")  # an object, null, or (older API versions) a request id
    key = request.get("idempotency_key") if isinstance(request, dict) else None
    if not isinstance(key, str) or not key.startswith(_EXPIRE_KEY):
        return None
    return key[len(_EXPIRE_KEY) :].split(":", 1)[0]
