"""Probe: what one page of 25 bookings costs to read and turn into SessionOut, as ORM objects
(read attribute by attribute, as the lists did before 2026-11-29) or as plain rows validated from
dicts (`lists.BookingRow` + `schemas.session_row_out`, as they do now). Both through the
app's asyncio engine in autocommit, one page after another, on the console benchmark's database
(evidence for docs/PERFORMANCE.md, section 6).

    .venv/bin/python benchmarks/bench_admin_bookings.py --quick   # once: loads the database
    .venv/bin/python benchmarks/probe_row_loading.py [--db tutorbook_bench_admin] [--pages 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

from tutorbook.bookings import lists
from tutorbook.bookings import repository as repo  # noqa: E402
from tutorbook.bookings.schemas import SessionOut, session_out, session_row_out  # noqa: E402
from tutorbook.db import Database  # noqa: E402

PAGE = 25


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="tutorbook_bench_admin", help="a database loaded by bench_admin_bookings.py")
    ap.add_argument("--pages", type=int, default=300)
    args = ap.parse_args()
    if not h.database_exists(args.db):
        sys.exit(f"no database {args.db}: run benchmarks/bench_admin_bookings.py first")
    db = Database(h.sa_url(args.db), pool_size=2, use_async=True)
    confirmed = repo.PS.status == 1
    as_objects = lists.keyset(lists._with_names(sa.select(repo.PS).where(confirmed)), after=None, limit=PAGE,
                             newest_first=True)
    as_rows = lists.keyset(lists.named_rows(confirmed), after=None, limit=PAGE, newest_first=True)

    def objects(session):
        return [session_out(b, t, s) for b, t, s in session.execute(as_objects).all()]

    def rows(session):
        return [session_row_out(row, SessionOut) for row in session.execute(as_rows).mappings().all()]

    async def timed(fn) -> tuple[float, float]:
        async def once():
            async with db.async_statement_scope() as session:
                return await session.run_sync(fn)

        assert len(await once()) == PAGE + 1
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.pages):
            await once()
        return ((time.perf_counter() - wall) / args.pages * 1000, (time.process_time() - cpu) / args.pages * 1000)

    async def run() -> None:
        for label, fn in (("ORM objects", objects), ("plain rows", rows)) * 2:  # twice: the second is warm
            wall, cpu = await timed(fn)
            print(f"{label:12} {PAGE + 1} rows a page: {wall:.2f} ms wall, {cpu:.2f} ms CPU of this process")
        await db.dispose_async()

    asyncio.run(run())


if __name__ == "__main__":
    main()
