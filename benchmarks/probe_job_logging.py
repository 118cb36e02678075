"""Probe: what a job's per-item log line costs (evidence for docs/PERFORMANCE.md, section 5).

Records N routine items ("checkout_expired") in a JobResult with the app's JSON logging writing
to a file, twice: with the log level at DEBUG (every item is a line, as every item was at INFO
before 2026-11-29) and at INFO, the default (routine items are DEBUG now: no line).

    .venv/bin/python benchmarks/probe_job_logging.py [--items 100000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid

from tutorbook.jobs.result import JobResult
from tutorbook.logs import configure_logging


def run(level: str, items: list[uuid.UUID]) -> float:
    configure_logging(json_lines=True, level=level)
    result = JobResult("expire")
    started = time.perf_counter()
    for booking_id in items:
        result.add(booking_id, "checkout_expired")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=100_000)
    args = ap.parse_args()
    items = [uuid.uuid4() for _ in range(args.items)]
    out = sys.stdout
    with tempfile.TemporaryFile("w") as sink:
        sys.stderr = sink  # the log lines go to a file, as a worker's stderr would
        try:
            timings = {level: run(level, items) for level in ("DEBUG", "INFO")}
        finally:
            sys.stderr = sys.__stderr__
            logging.shutdown()
    for level, seconds in timings.items():
        print(f"level {level}: {seconds:.2f} s for {args.items:,} items ({1e6 * seconds / args.items:.1f} µs each)",
              file=out)


if __name__ == "__main__":
    main()
