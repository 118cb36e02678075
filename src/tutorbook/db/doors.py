"""Hints a use case gives the write door (`Services.tx`) about a cheaper path: not ways in.

The write door runs `fn(session, **kwargs)` in one transaction. Wrapped with `one_statement` it
may run without BEGIN and COMMIT (on PostgreSQL), and with a `batch` the calls that arrive while
one is being written go together in the next statement (a `Coalescer`); wrapped with
`cpu_bound` it runs on a worker thread whatever the database."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

P = ParamSpec("P")
T = TypeVar("T")

# Writes many calls' keyword arguments as ONE statement on one connection; an answer per call.
BatchWrite = Callable[[AsyncConnection, list[dict[str, Any]]], Awaitable[list[T]]]


class WritePath(enum.Enum):
    """How the write door runs a hinted use case."""

    ONE_STATEMENT = "one_statement"  # atomic on its own: no BEGIN / COMMIT on PostgreSQL
    THREAD = "thread"  # spends CPU outside the database: a worker thread, never the event loop


@dataclass(frozen=True)
class Hinted(Generic[P, T]):
    """A use case with its hint; called like the use case itself."""

    fn: Callable[Concatenate[Session, P], T]
    path: WritePath
    batch: BatchWrite[T] | None = None

    @property
    def name(self) -> str:
        """The use case's dotted name (the key of its coalescer)."""
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def __call__(self, session: Session, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.fn(session, *args, **kwargs)


def one_statement(fn: Callable[Concatenate[Session, P], T], *, batch: BatchWrite[T] | None = None) -> Hinted[P, T]:
    """`fn` sends exactly one statement (all of it or none happens); with `batch`, the calls that
    wait while one is written share the next statement (keyword arguments only, then)."""
    return Hinted(fn, WritePath.ONE_STATEMENT, batch)


def cpu_bound(fn: Callable[Concatenate[Session, P], T]) -> Hinted[P, T]:
    """`fn` spends CPU outside the database (hashing a password: tens of milliseconds), which on
    the event loop would hold up every other request meanwhile."""
    return Hinted(fn, WritePath.THREAD)
