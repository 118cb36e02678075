"""How long a request waits for one of the asyncio engine's connections under a crowd, through the
app's door (`Database.async_connection`: a first-come-first-served place, then the pool) against
the pool's own wait alone (SQLAlchemy's `AsyncAdaptedQueue`, an `asyncio.Queue`: a connection given
back wakes the longest waiter, but a request that asks before that waiter runs takes it, and the
waiter queues again at the back). Issue #33, docs/PERFORMANCE.md section 9, "Fifth round".

N tasks on one event loop (as one worker's requests in flight), each in a loop: wait for a
connection, one statement, give it back, then `--work-ms` of CPU (the rest of a request's Python)
and the next request. Printed per way: connections taken, and the wait's p50 / p99 / p99.9 / max.

    .venv/bin/python benchmarks/probe_pool_wait.py [--tasks 100] [--pool 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import sqlalchemy as sa

from tutorbook.db import Database

STATEMENT = sa.text("SELECT pg_sleep(:s)")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def crowd(db: Database, *, way: str, tasks: int, seconds: float, work_ms: float, sql_ms: float) -> list[float]:
    waits: list[float] = []
    end = time.perf_counter() + seconds

    def connection() -> AbstractAsyncContextManager[Any]:
        if way == "door":
            return db.async_connection()
        return db._async_parts().autocommit.connect()  # the pool's wait alone (main before this round)

    async def one() -> None:
        while time.perf_counter() < end:
            asked = time.perf_counter()
            async with connection() as conn:
                waits.append(time.perf_counter() - asked)
                await conn.execute(STATEMENT, {"s": sql_ms / 1000})
            spin = time.perf_counter() + work_ms / 1000
            while time.perf_counter() < spin:  # the request's own Python, holding the loop
                pass
            await asyncio.sleep(0)

    await asyncio.gather(*(one() for _ in range(tasks)))
    return waits


async def main_async(args: argparse.Namespace) -> None:
    for way in args.ways.split(","):
        db = Database(args.url, pool_size=args.pool, pool_timeout=120)
        try:
            waits = await crowd(
                db, way=way, tasks=args.tasks, seconds=args.seconds, work_ms=args.work_ms, sql_ms=args.sql_ms
            )
        finally:
            await db.dispose_async()
            db.dispose()
        ms = [w * 1000 for w in waits]
        print(
            f"{way:5s} {len(ms):6d} connections taken; wait p50 {pct(ms, 50):7.1f}  p99 {pct(ms, 99):7.1f}  "
            f"p99.9 {pct(ms, 99.9):7.1f}  max {max(ms):7.1f} ms",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--pool", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--work-ms", type=float, default=2.0)
    ap.add_argument("--sql-ms", type=float, default=1.0)
    ap.add_argument("--ways", default="pool,door,pool,door")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
