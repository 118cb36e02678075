"""Run every benchmark in --quick mode (CI): exits non-zero when a benchmark crashes, or when
bench_mixed.py saw a 5xx (it exits non-zero itself: overload must never be a server error).

A missed goal is printed (MISS) but is not a failure here: the figures of a CI-sized run on a
shared machine are not the goal's scale (docs/PERFORMANCE.md holds the full runs).

    .venv/bin/python benchmarks/run_all.py            # all, --quick
    .venv/bin/python benchmarks/run_all.py --full     # all at full size (several minutes)
    .venv/bin/python benchmarks/run_all.py webhooks   # only those whose name contains "webhooks"

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; BENCH_PG_ADMIN_URL overrides).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_stripe_latency.py",
    "bench_booking_cost.py",
    "bench_webhooks.py",
    "bench_my_bookings.py",
    "bench_expire.py",
    "bench_admin_bookings.py",
    "bench_scale_out.py",
    "bench_calendar_availability.py",  # issue #30: 3 calendars x 500 events per teacher, ~20 s at CI size
    "bench_mixed.py",  # issue #33: exits non-zero (a CI failure) on a 500/502/504 or a malformed 503, 200 parents at CI size
]
TIMEOUT_S = {"quick": 600, "full": 3600}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", help="run only benchmarks whose file name contains one of these")
    ap.add_argument("--full", action="store_true", help="full size instead of --quick")
    ap.add_argument("--write-docs", action="store_true", help="pass --write-docs to each benchmark")
    args = ap.parse_args()
    chosen = [b for b in BENCHMARKS if not args.only or any(o in b for o in args.only)]
    mode = "full" if args.full else "quick"
    crashed, summary = [], []
    for script in chosen:
        cmd = [sys.executable, str(HERE / script)] + ([] if args.full else ["--quick"])
        if args.write_docs:
            cmd.append("--write-docs")
        print(f"\n=== {script} ({mode}) ===", flush=True)
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, timeout=TIMEOUT_S[mode], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
            out, rc = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out, rc = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), -1
            out += f"\n(timed out after {TIMEOUT_S[mode]} s)"
        print(out, end="" if out.endswith("\n") else "\n")
        took = time.monotonic() - started
        lines = [line for line in out.splitlines() if line.startswith(("PASS", "MISS", "SKIPPED"))]
        if rc != 0:
            crashed.append(script)
            what = "FAIL " if "\nFAIL: " in out else "CRASH"  # bench_mixed.py: a 5xx answered
            summary.append(f"{what}  {script} (exit {rc}, {took:.0f} s)")
        else:
            summary += [f"{line}" for line in lines] or [f"ok     {script} ({took:.0f} s, no goal lines)"]
    print("\n=== summary ===")
    for line in summary:
        print(line)
    if crashed:
        print(f"\n{len(crashed)} benchmark(s) crashed or failed: {', '.join(crashed)}")
        return 1
    print(f"\nno crashes ({len(chosen)} benchmark(s); missed goals are reported above, not failures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
