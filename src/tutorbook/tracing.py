"""Tracing's one door for the product's code (issue #31): the current trace as a W3C
`traceparent`, to store beside work that runs later in another process (a mail outbox row, a
Checkout Session's metadata), and a span that continues such a stored trace.

Off (TUTORBOOK_TRACING=off, the default) each call is one test of a module global: OpenTelemetry
is not imported at all. `tutorbook.telemetry`, which the entry points import only when tracing
is on, installs the real `Tracer` here (docs/operations.md, "Tracing")."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy.engine import Engine


class Tracer(Protocol):
    """What tracing does when it is on (tutorbook.telemetry)."""

    def traceparent(self) -> str | None: ...

    def continued(
        self, traceparent: str | None, name: str, attributes: Mapping[str, Any]
    ) -> AbstractContextManager[None]: ...

    def annotate(self, attributes: Mapping[str, Any]) -> None: ...

    def engine_made(self, engine: Engine) -> None: ...


_active: Tracer | None = None
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


def install(tracer: Tracer | None) -> None:
    """Turn tracing on with `tracer`, or off with None (tests)."""
    global _active
    _active = tracer


def enabled() -> bool:
    return _active is not None


def traceparent() -> str | None:
    """The current span as a W3C traceparent (`00-<trace id>-<span id>-<flags>`); None when
    tracing is off or no span is current."""
    return None if _active is None else _active.traceparent()


def continued(traceparent: str | None, name: str, **attributes: Any) -> AbstractContextManager[None]:
    """A span `name` for work done on behalf of `traceparent`'s trace (a child of that span, linked
    to whatever span is current), or a span of its own when there is none stored."""
    if _active is None:
        return _OFF
    return _active.continued(traceparent, name, attributes)


def annotate(**attributes: Any) -> None:
    """Attributes on the current span (the request id on the request's span)."""
    if _active is not None:
        _active.annotate(attributes)


def engine_made(engine: Engine) -> None:
    """db.Database calls this for each engine it makes (the asyncio ones per event loop, later)."""
    if _active is not None:
        _active.engine_made(engine)
