"""Probe: what one statement, and one transaction, cost the app's process on its async path.

Not a goal benchmark: evidence for docs/PERFORMANCE.md (sections 3 and 7: why a confirmation,
eleven statements in one transaction, costs ~2 ms of the app's CPU). One prebuilt Core SELECT by
primary key (`stripe_events`, an id that is not there), run in a loop through each layer the app
uses, on a fresh migrated database; the CPU is this process's own (`time.process_time`), i.e. what
the app would pay, PostgreSQL's not counted:

  asyncpg alone            a prepared statement, `fetch` (the driver under everything else)
  Core connection          `Database.async_connection()` (autocommit) + `AsyncConnection.execute`
  ORM session, in a tx     `AsyncSession.run_sync`, the statement through `Session.execute`, many
                           in one transaction (what each statement of a use case costs)
  a transaction            `Database.async_scope()` + `run_sync` of one statement (what
                           `Services.tx` adds per use case: session, BEGIN, greenlet, COMMIT)
  one statement, autocommit `Database.async_statement_scope()` + `run_sync` (`Services.statement`)

    .venv/bin/python benchmarks/probe_statement_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
import harness as h  # noqa: E402

from tutorbook.db import Database  # noqa: E402
from tutorbook.payments.models import StripeEvent  # noqa: E402

EVENTS = StripeEvent.__table__
LOOKUP = sa.select(EVENTS.c.id).where(EVENTS.c.id == sa.bindparam("id"))
SQL = "SELECT stripe_events.id FROM stripe_events WHERE stripe_events.id = $1"


async def per_call(label: str, n: int, call) -> tuple[str, float]:
    for _ in range(min(200, n)):  # warm: prepared statements, compiled cache, pool
        await call()
    started = time.process_time()
    for _ in range(n):
        await call()
    return label, 1000 * (time.process_time() - started) / n


async def measure(db: Database, dbname: str, n: int) -> list[tuple[str, float]]:
    rows = []
    raw = await asyncpg.connect(h.pg_url(dbname))
    prepared = await raw.prepare(SQL)
    rows.append(await per_call("asyncpg alone (prepared fetch)", n, lambda: prepared.fetch("evt_none")))
    await raw.close()

    async with db.async_connection() as conn:
        rows.append(await per_call("Core connection (AsyncConnection.execute)", n,
                                   lambda: conn.execute(LOOKUP, {"id": "evt_none"})))

    async with db.async_scope() as session:
        def many(s, count):
            for _ in range(count):
                s.execute(LOOKUP, {"id": "evt_none"})

        await session.run_sync(many, 200)
        started = time.process_time()
        await session.run_sync(many, n)
        rows.append(("ORM session, in a transaction (Session.execute, per statement)",
                     1000 * (time.process_time() - started) / n))

    async def one_tx():
        async with db.async_scope() as s:
            await s.run_sync(lambda ss: ss.execute(LOOKUP, {"id": "evt_none"}))

    async def one_autocommit():
        async with db.async_statement_scope() as s:
            await s.run_sync(lambda ss: ss.execute(LOOKUP, {"id": "evt_none"}))

    rows.append(await per_call("a transaction around one statement (Services.tx)", n // 3, one_tx))
    rows.append(await per_call("one statement in autocommit (Services.statement)", n // 3, one_autocommit))
    await db.dispose_async()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer calls")
    args = ap.parse_args()
    dbname = "tutorbook_probe_statements"
    db = Database(h.fresh_database(dbname), pool_size=2, use_async=True)
    n = 1000 if args.quick else 6000
    rows = asyncio.run(measure(db, dbname, n))
    db.dispose()
    print(h.md_table(["layer", "app CPU ms per call"], [[label, f"{ms:.3f}"] for label, ms in rows]))


if __name__ == "__main__":
    main()
