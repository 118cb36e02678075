"""Not a goal: what a full (generation 2) garbage collection costs the app's process, before and
after `gc.freeze()` (issue #33, docs/PERFORMANCE.md section 9).

Builds the app as `tutorbook serve` would (create_app on a SQLite database in a temporary
directory, every route and model imported), then times gc.collect() of each generation, without
and with the start-up objects frozen, and counts the objects a full collection walks.

    .venv/bin/python benchmarks/probe_gc.py
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def timed(generation: int, runs: int = 15) -> float:
    took = []
    for _ in range(runs):
        t0 = time.process_time()  # CPU time: the machine is shared, its wall clock is not ours
        gc.collect(generation)
        took.append((time.process_time() - t0) * 1000)
    return statistics.median(took)


def main() -> None:
    from tutorbook.app import create_app
    from tutorbook.config import Settings
    from tutorbook.migrate import upgrade

    var = Path(tempfile.mkdtemp(prefix="tutorbook-gc-"))
    url = f"sqlite:///{var / 'gc.db'}"
    upgrade(url)
    create_app(Settings(database_url=url, var_dir=var, jobs_enabled=False).resolved())
    print(f"objects tracked after start-up: {len(gc.get_objects()):,}")
    print(f"default thresholds {gc.get_threshold()}")
    before = {g: timed(g) for g in (0, 1, 2)}
    gc.freeze()
    print(f"frozen: {gc.get_freeze_count():,} objects; tracked now {len(gc.get_objects()):,}")
    after = {g: timed(g) for g in (0, 1, 2)}
    print("| collection | not frozen, CPU ms (median of 15) | after gc.freeze(), CPU ms |")
    print("|---|---:|---:|")
    for g in (0, 1, 2):
        print(f"| generation {g} | {before[g]:.2f} | {after[g]:.2f} |")


if __name__ == "__main__":
    main()
