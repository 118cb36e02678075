"""Runs every job on its interval inside a running event loop; each run happens in a worker
thread (the jobs are sync: SQLAlchemy sessions and the Stripe SDK's sync calls).

`start()` is what `tutorbook serve` calls from the app's lifespan; `run_forever()` is
`tutorbook worker`. Several processes may run it at once: the jobs are safe to race.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import signal

import anyio.to_thread

from tutorbook import jobs
from tutorbook.clock import utc_now
from tutorbook.metrics import METRICS, Metrics

log = logging.getLogger("tutorbook.jobs")

# Replicas started together should not all hit the database in the same second.
STARTUP_SPREAD_S = 5.0


class Scheduler:
    def __init__(self, svc, *, metrics: Metrics, names: list[str] | None = None):
        self.svc, self.metrics = svc, metrics
        self.names = names if names is not None else list(jobs.JOBS)
        self._tasks: list[asyncio.Task] = []

    def start(self) -> Scheduler:
        """One task per scheduled job in the running loop."""
        for name in self.names:
            every = jobs.interval(self.svc.settings, name)
            if every > 0:
                self._tasks.append(asyncio.create_task(self._loop(name, every), name=f"job:{name}"))
        log.info(
            "scheduler started",
            extra={"jobs": {n: jobs.interval(self.svc.settings, n) for n in self.names}},
        )
        return self

    async def _loop(self, name: str, every: float) -> None:
        await asyncio.sleep(random.uniform(0, min(every, STARTUP_SPREAD_S)))
        while True:
            await self.run_once(name)
            await asyncio.sleep(every)

    async def run_once(self, name: str) -> jobs.JobResult | None:
        """One run in a worker thread; an error is logged and counted, never raised."""
        call = functools.partial(jobs.run, name, self.svc, now=utc_now(), metrics=self.metrics)
        try:
            return await anyio.to_thread.run_sync(call)
        except Exception:
            log.exception("job failed", extra={"job": name})
            return None

    async def stop(self) -> None:
        """Cancel the loops; a run in progress finishes its current work first."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        log.info("scheduler stopped")


def start(svc, *, metrics: Metrics | None = None) -> Scheduler:
    """Start the schedule in the running event loop; `await .stop()` at shutdown."""
    return Scheduler(svc, metrics=metrics or METRICS).start()


async def run_forever(svc, *, metrics: Metrics | None = None) -> None:
    """The worker: the schedule until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    scheduler = start(svc, metrics=metrics)
    try:
        await stopping.wait()
    finally:
        await scheduler.stop()
