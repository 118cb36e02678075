"""Overload: a bounded number of requests in flight per process, the rest refused quickly with 503.

A process that takes every request it is sent serves all of them slowly once it is past its
capacity: each waits for the event loop, a worker thread or a database connection, the waits grow
without bound, and the oldest end in a timeout (a 500, before issue #33). Here at most
`limit` requests are being worked on at once; up to `queue` more wait for a place, each at most
`wait_s` seconds; the rest, and those whose wait ran out, are answered at once with
`503 Service Unavailable`, `Retry-After` and the envelope. So the work the process can do is
done at full speed, and a client that is refused knows so within `wait_s`.

`/health` is never refused (a load balancer's check must not read overload as death).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from tutorbook.api.errors import BUSY, error_response, note_refusal
from tutorbook.loops import PerLoop

log = logging.getLogger("tutorbook.http")

OVERLOADED = BUSY
EXEMPT_PATHS = ("/health",)


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header (whole seconds, at least 1) of an overload answer."""
    return {"Retry-After": str(max(1, round(seconds)))}


@dataclass
class _Gate:
    """One event loop's places: the semaphore and how many wait for it."""

    places: asyncio.Semaphore
    waiting: int = 0
    refused: int = field(default=0)


class AdmissionMiddleware:
    """Plain ASGI middleware admitting at most `limit` HTTP requests at once (see the module)."""

    def __init__(self, app: ASGIApp, *, limit: int, queue: int, wait_s: float, retry_after_s: float) -> None:
        self.app = app
        self.limit, self.queue, self.wait_s = limit, queue, wait_s
        self.headers = retry_after(retry_after_s)
        # A semaphore belongs to the loop that waits on it (the server's; a test client's).
        self._gates: PerLoop[_Gate] = PerLoop(lambda: _Gate(asyncio.Semaphore(limit)))

    def gate(self) -> _Gate:
        """The running loop's gate (for the metrics and the tests)."""
        return self._gates.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PATHS):
            await self.app(scope, receive, send)
            return
        gate = self._gates.get()
        refused = await self._admit(gate)
        if refused is not None:
            gate.refused += 1
            note_refusal(scope.get("app"), refused, scope["path"])
            await error_response(503, OVERLOADED, None, self.headers)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.places.release()

    async def _admit(self, gate: _Gate) -> str | None:
        """None once a place is held; else why not: the queue was full, or the wait ran out."""
        if not gate.places.locked():
            await gate.places.acquire()  # free: returns at once
            return None
        if gate.waiting >= self.queue:
            return "admission_queue_full"
        gate.waiting += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await gate.places.acquire()
            return None
        except TimeoutError:
            return "admission_wait"
        finally:
            gate.waiting -= 1
