"""Runs every job on its interval inside a running event loop; each run happens in a worker
thread (the jobs are sync: SQLAlchemy sessions and the Stripe SDK's sync calls).

`start()` is what `tutorbook serve` calls from the app's lifespan; `run_forever()` is
`tutorbook worker` (`--only` some of the jobs). Several processes may run it at once: on
PostgreSQL each sweep runs once per interval across all of them (jobs/claims.py), and the jobs
are safe to race anyway.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import signal
import threading
from typing import Any

import anyio.to_thread

from tutorbook import jobs
from tutorbook.clock import utc_now
from tutorbook.flows.services import Services
from tutorbook.jobs import claims, wakeup
from tutorbook.metrics import METRICS, Metrics

log = logging.getLogger("tutorbook.jobs")

# Replicas started together should not all hit the database in the same second.
STARTUP_SPREAD_S = 5.0
# Wake this much after the claim's next_run_at, so the next claim finds it due.
CLAIM_SLACK_S = 0.05


class Scheduler:
    def __init__(self, svc: Services, *, metrics: Metrics, names: list[str] | None = None):
        self.svc, self.metrics = svc, metrics
        self.names = names if names is not None else list(jobs.JOBS)
        self._tasks: list[asyncio.Task[None]] = []
        # Set at stop(): the mail job gives back the messages it claimed and has not sent yet.
        self.stopping = threading.Event()
        # Jobs that a NOTIFY wakes before their interval is up (mail, on PostgreSQL).
        self._wake: dict[str, asyncio.Event] = {}

    def start(self) -> Scheduler:
        """One task per scheduled job in the running loop."""
        for name in self.names:
            every = jobs.interval(self.svc.settings, name)
            if every > 0:
                if name == "mail" and not self.svc.db.is_sqlite and self.svc.settings.mail_listen:
                    self._wake[name] = asyncio.Event()
                    url = self.svc.settings.direct_url
                    self._tasks.append(asyncio.create_task(wakeup.listen(url, self._wake[name]), name="listen:mail"))
                self._tasks.append(asyncio.create_task(self._loop(name, every), name=f"job:{name}"))
        log.info(
            "scheduler started",
            extra={"jobs": {n: jobs.interval(self.svc.settings, n) for n in self.names}},
        )
        return self

    async def _loop(self, name: str, every: float) -> None:
        await self._nap(name, random.uniform(0, min(every, STARTUP_SPREAD_S)))
        while True:
            await self._nap(name, await self.turn(name, every))

    async def _nap(self, name: str, seconds: float) -> None:
        """Sleep `seconds`, or less when a notification wakes this job."""
        wake = self._wake.get(name)
        if wake is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            pass
        wake.clear()

    async def turn(self, name: str, every: float) -> float:
        """Run `name` if this process wins this interval's claim; the seconds to sleep before the
        next turn. A claim that fails (the database is away) is logged and tried next interval."""
        try:
            turn = await anyio.to_thread.run_sync(functools.partial(claims.claim, self.svc.db, job=name, every=every))
        except Exception:
            log.exception("job claim failed", extra={"job": name})
            return every
        if not turn.won:
            return turn.wait_s + CLAIM_SLACK_S
        await self.run_once(name)
        return every

    async def run_once(self, name: str) -> jobs.JobResult | None:
        """One run in a worker thread; an error is logged and counted, never raised."""
        options: dict[str, Any] = {"stop": self.stopping} if name == "mail" else {}
        call = functools.partial(jobs.run, name, self.svc, now=utc_now(), metrics=self.metrics, **options)
        try:
            return await anyio.to_thread.run_sync(call)
        except Exception:
            log.exception("job failed", extra={"job": name})
            return None

    async def stop(self) -> None:
        """Cancel the loops; a run in progress finishes its current item first (the mail job gives
        back the rest of its batch)."""
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        log.info("scheduler stopped")


def start(svc: Services, *, metrics: Metrics | None = None, names: list[str] | None = None) -> Scheduler:
    """Start the schedule (of `names`, default every job) in the running event loop; `await .stop()` at shutdown."""
    return Scheduler(svc, metrics=metrics or METRICS, names=names).start()


async def run_forever(svc: Services, *, metrics: Metrics | None = None, names: list[str] | None = None) -> None:
    """The worker: the schedule until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    scheduler = start(svc, metrics=metrics, names=names)
    try:
        await stopping.wait()
    finally:
        await scheduler.stop()
