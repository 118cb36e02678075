"""Whether this process is draining: it has been asked to stop (SIGTERM) and, for
TUTORBOOK_SHUTDOWN_DRAIN_SECONDS, still answers every request but tells the load balancer
(`/health/ready`: 503) to send it no more, before it stops accepting (issue #31)."""

from __future__ import annotations

import threading

_draining = threading.Event()


def start() -> None:
    """Begin draining (the SIGTERM handler of `tutorbook serve`)."""
    _draining.set()


def is_draining() -> bool:
    return _draining.is_set()


def reset() -> None:
    """For tests that run the app in process."""
    _draining.clear()
