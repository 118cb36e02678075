"""What belongs to an event loop: one value per running loop, forgotten once that loop closed.

An asyncio engine's connections, an aiohttp session and an asyncio future can only be used on the
loop that made them. A process runs more than one loop over its life (the server's; each
`asyncio.run` of a test or of the CLI), on more than one thread, so such things are kept per loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """The running loop's value, made by `make` the first time that loop asks. Values of loops
    that have closed are dropped then, passed to `forget` (their sockets went with their loop:
    they cannot be closed properly any more)."""

    def __init__(self, make: Callable[[], T], *, forget: Callable[[T], object] | None = None) -> None:
        self._make, self._forget = make, forget
        self._values: dict[asyncio.AbstractEventLoop, T] = {}
        self._guard = threading.Lock()  # loops on other threads add theirs

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            with self._guard:
                value = self._values.get(loop)
                if value is None:
                    for closed in [other for other in self._values if other.is_closed()]:
                        dropped = self._values.pop(closed)
                        if self._forget is not None:
                            self._forget(dropped)
                    value = self._values[loop] = self._make()
        return value

    def pop(self) -> T | None:
        """The running loop's value, no longer kept (for the caller to close), or None."""
        with self._guard:
            return self._values.pop(asyncio.get_running_loop(), None)

    def loops(self) -> list[asyncio.AbstractEventLoop]:
        """The loops that have a value now."""
        with self._guard:
            return list(self._values)
