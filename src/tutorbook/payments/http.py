"""The Stripe SDK's transport as the gateway uses it: its HTTP client with sized connection pools
(StripeHTTPClient, given to the gateway's StripeClient) and the SDK's failures translated into the
gateway's own errors (mapped_errors, from `port.py`), so no caller needs to know the SDK's.

It subclasses and catches the SDK's classes, so it imports `stripe` too: the one module besides
the gateway that may (the `stripe-through-the-gateway` import contract lists it); it makes no API
call of its own.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import aiohttp
import httpx
import stripe

from tutorbook.loops import PerLoop
from tutorbook.payments.port import (
    CheckoutNotFound,
    CheckoutNotOpen,
    GatewayError,
    GatewayTimeout,
    RefundRefused,
    Refused,
)

__all__ = ["StripeHTTPClient", "mapped_errors"]

log = logging.getLogger("tutorbook.stripe")


class StripeHTTPClient(stripe.HTTPXClient):
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


class mapped_errors:
    """Translate SDK exceptions into the gateway's own, so callers never import stripe."""

    def __init__(self, *, not_open: bool = False, refund: bool = False):
        self.not_open, self.refund = not_open, refund

    def __enter__(self) -> mapped_errors:
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
