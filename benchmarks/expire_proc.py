"""Run the expire job once in its own process, as `tutorbook worker` / `tutorbook jobs run
expire` would, and print one JSON line: seconds, counts. Settings come from TUTORBOOK_* (the
harness passes the app's); the database URL may carry ?application_name=... so the benchmark
can tell the job's PostgreSQL backend from the app's.

    TUTORBOOK_DATABASE_URL=... .venv/bin/python benchmarks/expire_proc.py
"""

from __future__ import annotations

import json
import time

from tutorbook import jobs
from tutorbook.clock import utc_now
from tutorbook.config import get_settings
from tutorbook.db import Database
from tutorbook.flows.services import build_services
from tutorbook.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging(json_lines=True, level=settings.log_level)
    svc = build_services(settings, Database(settings.database_url, pool_size=settings.db_pool_size))
    started = time.perf_counter()
    cpu0 = time.process_time()
    result = jobs.run("expire", svc, now=utc_now())
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": round(seconds, 3), "cpu_s": round(time.process_time() - cpu0, 3),
                      "counts": result.counts(), "items": len(result.items)}), flush=True)
    svc.db.dispose()


if __name__ == "__main__":
    main()
