"""The HTTP protocol `tutorbook serve` gives uvicorn: uvicorn's own (httptools, else h11) plus a
deadline and a size limit for each request head. uvicorn closes an idle kept-alive connection
after `timeout_keep_alive`, but a client that opens a connection (or starts the next request) and
then sends its headers a byte at a time was kept forever, and httptools buffers a head of any
size (8 MB of one header were accepted; h11 stops at 16 KiB)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any, ClassVar

import uvicorn

from tutorbook import drain
from tutorbook.config import get_settings

try:  # what uvicorn's "auto" picks
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]


MAX_HEAD_BYTES = 64 * 1024
HEAD_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class HeaderTimeoutProtocol(_Protocol):
    """Closes a connection whose next request head has not arrived within
    TUTORBOOK_HEADER_TIMEOUT_SECONDS of the connection opening or the last answer, or has grown
    past MAX_HEAD_BYTES (answered 431)."""

    timeout: ClassVar[float | None] = None  # None: from the settings (tests set it)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._answering():  # still no whole head: these bytes were (part of) one
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()
        else:
            self._head_bytes = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._head_bytes = 0
        self._arm()

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        seconds = self.timeout if self.timeout is not None else get_settings().header_timeout_seconds
        self._head_timer = self.loop.call_later(seconds, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._answering():
            return  # a request is being answered: its head came in time (re-armed when it is done)
        if not self.transport.is_closing():
            self.transport.close()


log = logging.getLogger("tutorbook.http")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, but the first SIGTERM starts a drain of `drain_seconds`: the process goes
    on answering every request while `/health/ready` answers 503, so the load balancer's health
    check takes it out of rotation; then uvicorn's own shutdown (stop accepting, the grace for the
    requests in flight, the lifespan's shutdown). A second SIGTERM, or SIGINT, ends the drain at
    once. With `drain_seconds` 0 it is uvicorn's server unchanged."""

    def __init__(self, config: uvicorn.Config, *, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._drain_timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_seconds > 0 and self._drain_timer is None and not self.should_exit:
            drain.start()
            log.info("draining before shutdown", extra={"drain_seconds": self.drain_seconds})
            self._drain_timer = threading.Timer(self.drain_seconds, self._drained, args=(sig,))
            self._drain_timer.daemon = True
            self._drain_timer.start()
            return
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        super().handle_exit(sig, frame)

    def _drained(self, sig: int) -> None:
        log.info("drained; shutting down")
        super().handle_exit(sig, None)


def run(app: str, *, workers: int, drain_seconds: float, **options: Any) -> None:
    """`tutorbook serve`'s uvicorn.run: one worker process runs a DrainingServer; several run
    uvicorn's own supervisor, whose workers stop without a drain (logged when one was asked for)."""
    if workers > 1:
        if drain_seconds > 0:
            log.warning("the shutdown drain applies to one worker process; --workers %d stop without it", workers)
        uvicorn.run(app, workers=workers, **options)
        return
    server = DrainingServer(uvicorn.Config(app, workers=1, **options), drain_seconds=drain_seconds)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn.run's STARTUP_FAILURE
