"""How many Stripe calls may be in flight at once (CallBound): the gateway's adaptive limiter.

No Stripe here: the gateway waits on it around each async call (`StripeGateway._slot`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from dataclasses import dataclass, field

from tutorbook.loops import PerLoop

__all__ = ["CallBound"]

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
