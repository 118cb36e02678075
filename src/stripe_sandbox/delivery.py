"""Webhook delivery: signed POSTs of stored events to each endpoint that wants them (with that
endpoint's secret), retried with backoff until a 2xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time

import httpx

from .service import Sandbox

log = logging.getLogger(__name__)

BATCH = 50
MAX_IDLE_S = 1.0


def sign(secret: str, timestamp: int, payload: str) -> str:
    """The ``Stripe-Signature`` header value for a payload sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class Deliverer:
    """Background task that sends pending deliveries stored in SQLite."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: set[tuple[str, str]] = set()  # (event, endpoint)
        self._tasks: set[asyncio.Task[None]] = set()
        self._attempt_waiters: dict[str, set[asyncio.Event]] = {}

    async def wait_for_attempt(self, event_id: str, timeout: float) -> None:
        """Return when an attempt to deliver ``event_id`` ends (to any endpoint), or after
        ``timeout`` seconds, whichever is first (call from the event loop)."""
        done = asyncio.Event()
        self._attempt_waiters.setdefault(event_id, set()).add(done)
        try:
            await asyncio.wait_for(done.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            waiters = self._attempt_waiters.get(event_id)
            if waiters is not None:
                waiters.discard(done)
                if not waiters:
                    del self._attempt_waiters[event_id]

    def wake(self) -> None:
        """Look for due deliveries now (safe to call from any thread)."""
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop already closed during shutdown
                pass

    def _active(self) -> bool:
        return self.sandbox.config.deliver_webhooks

    async def run(self) -> None:
        """Deliver forever; cancel the task to stop."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        timeout = httpx.Timeout(self.sandbox.config.webhook_timeout_s)
        async with httpx.AsyncClient(timeout=timeout) as client:
            try:
                while True:
                    self._wake.clear()
                    if self._active():
                        self._start_due(client)
                    await self._idle()
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_due(self, client: httpx.AsyncClient) -> None:
        store = self.sandbox.store
        for delivery in store.due_deliveries(time.time(), BATCH + len(self._in_flight)):
            key = (delivery.event_id, delivery.endpoint_id)
            if key in self._in_flight:
                continue
            self._in_flight.add(key)
            task = asyncio.create_task(self._attempt(client, *key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _idle(self) -> None:
        assert self._wake is not None
        next_due = self.sandbox.store.next_due_at(self._in_flight) if self._active() else None
        delay = MAX_IDLE_S if next_due is None else next_due - time.time()
        delay = min(max(delay, 0.01), MAX_IDLE_S)
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay)
        except TimeoutError:
            pass

    async def _attempt(self, client: httpx.AsyncClient, event_id: str, endpoint_id: str) -> None:
        try:
            await self._send(client, event_id, endpoint_id)
        except Exception:  # a broken attempt must not kill the delivery loop
            log.exception("webhook delivery of %s to %s failed unexpectedly", event_id, endpoint_id)
        finally:
            self._in_flight.discard((event_id, endpoint_id))
            for done in self._attempt_waiters.get(event_id, ()):
                done.set()
            self.wake()

    async def _send(self, client: httpx.AsyncClient, event_id: str, endpoint_id: str) -> None:
        target = self.sandbox.endpoint_target(endpoint_id)
        if target is None:
            return  # the endpoint was removed or disabled meanwhile; the row stays pending
        url, secret = target
        payload = self.sandbox.event_payload(event_id, endpoint_id)
        if payload is None:
            self._record(event_id, endpoint_id, None, "event not found")
            return
        timestamp = int(time.time())  # real time: receivers check it against their clock
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(secret, timestamp, payload),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await client.post(url, content=payload.encode(), headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record(event_id, endpoint_id, status, error)

    def _record(self, event_id: str, endpoint_id: str, status: int | None, error: str | None) -> None:
        store = self.sandbox.store
        delivered = status is not None and 200 <= status < 300
        now = time.time()
        with store.transaction():
            current = store.get_delivery(event_id, endpoint_id)
            if current is None:
                return
            delay = self.sandbox.config.retry_delay(current.attempts + 1)
            store.record_attempt(
                event_id,
                endpoint_id,
                status=status,
                error=error,
                delivered=delivered,
                now=now,
                next_attempt_at=now + delay,
            )
        if not delivered:
            log.info(
                "webhook %s to %s not acknowledged (%s); retry in %ss", event_id, endpoint_id, status or error, delay
            )
