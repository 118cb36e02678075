"""Many callers' one-row writes of the same kind sent together as one statement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class Coalescer(Generic[Item, Answer]):
    """Many callers' single-row writes sent as one statement, without waiting to fill a batch.

    `await submit(item)` answers what `write(items)` answered for that item. The first item
    starts a write at once; items submitted while a write is in flight wait for the next one,
    which takes them all (at most `max_batch`). So at low load each item is written alone, with
    no added latency, and under load a write carries every item that arrived during the last
    one's round trip. One write at a time per event loop. If a write fails, each of its items'
    callers gets the error (the write is one statement: all of it or none of it happened).
    A caller that stops waiting (a dropped request) does not stop its item's write."""

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Answer]]], *, max_batch: int = 500) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps a task weakly

    async def submit(self, item: Item) -> Answer:
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._drainer is None or self._drainer.done():  # no write in flight: start one now
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                answers = await self._write([item for item, _ in batch])
                if len(answers) != len(batch):
                    raise RuntimeError(f"a write answered {len(answers)} of {len(batch)} items")
            except Exception as exc:  # every caller of this batch sees it
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for (_, answer), value in zip(batch, answers, strict=True):
                if not answer.done():
                    answer.set_result(value)
