"""Benchmark 5: expiring 100,000 stale Pending bookings, while bookings go on.

Loads 100,000 Pending bookings whose checkout expired ten minutes ago and that never got a
Checkout Session (no stripe_session_id: the job's no-Stripe path, Cancelled
`checkout_failed`), spread over 200 teachers in the half hours :00-:30 of the coming weeks.
Then, with the app and the sandbox running:

1. baseline: parents book free slots of the same teachers (the :30-:60 half hours) at a
   steady closed-loop concurrency, no job running;
2. the expire job runs once in its own process (benchmarks/expire_proc.py: `jobs.run("expire",
   ...)`, what `tutorbook worker` and `tutorbook jobs run expire` run) while the same booking
   load goes on until the job ends; a sampler polls pg_stat_activity every 10 ms for the app's
   backends waiting on a lock.

Goals (issue #7): the job handles the 100,000 rows in <= 10 s; concurrent bookings never wait
> 100 ms — reported both as PostgreSQL lock waits of booking backends and as the bookings' p99
during the job against the baseline p99.

    .venv/bin/python benchmarks/bench_expire.py [--quick] [--write-docs]
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import loadgen  # noqa: E402
import psycopg  # noqa: E402

JOB_APP_NAME = "bench-expire-job"
N = r"\N"
COLUMNS = ["id", "parent_id", "student_id", "teacher_id", "subject", "starts_at", "ends_at", "price_amount",
           "currency", "status", "checkout_expires_at", "refunded_amount", "meeting_attempts", "created_at",
           "updated_at"]


JOB_CATEGORIES = [
    ("tasks.expire (whole job)", "expire (tutorbook/jobs/tasks.py"),
    ("... stale_pending (select a batch FOR UPDATE SKIP LOCKED)", "stale_pending"),
    ("... repo.apply_many (per batch)", "apply_many"),
    ("...... UPDATE ... WHERE id IN (...) AND status = 0 RETURNING id", "apply_many (tutorbook/bookings/repository.py:113)"),
    ("...... history rows: one INSERT ... SELECT", "apply_many (tutorbook/bookings/repository.py:129)"),
    ("... COMMIT per batch", "TransactionalContext.__exit__"),
    ("... JobResult.add (per-item log line)", "JobResult.add"),
    ("waiting for PostgreSQL (psycopg wait)", "Connection.wait"),
]


def load_stale(dbname: str, seed: h.Seed, *, rows: int) -> dict:
    """`rows` stale Pending bookings (no checkout), :00-:30 of successive hours per teacher."""
    now = datetime.now(UTC)
    base = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    expired, created = h.ts(now - timedelta(minutes=10)), h.ts(now - timedelta(minutes=41))
    teachers = [str(t) for t in seed.teachers]
    parents = [(str(p), str(seed.students[p][0])) for p in seed.parents]
    hours = rows // len(teachers) + 1
    starts = [(h.ts(base + timedelta(hours=j)), h.ts(base + timedelta(hours=j, minutes=30))) for j in range(hours)]

    def lines():
        for k in range(rows):
            parent, student = parents[k % len(parents)]
            s, e = starts[k // len(teachers)]
            yield (f"{uuid.uuid4()}\t{parent}\t{student}\t{teachers[k % len(teachers)]}\tMathematics\t{s}\t{e}\t"
                   f"3000\tusd\t0\t{expired}\t0\t0\t{created}\t{created}")

    with psycopg.connect(h.pg_url(dbname)) as conn:
        info = h.bulk_copy(conn, "private_sessions", COLUMNS, lines())
        conn.commit()
    with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) private_sessions")
    return info


class LockWaits:
    """Polls pg_stat_activity every 10 ms; the longest lock wait seen per (backend, statement)."""

    def __init__(self, dbname: str):
        self.dbname = dbname
        self.waits: dict[tuple, tuple[float, str, str]] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LockWaits:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with psycopg.connect(h.pg_url(self.dbname), autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT pid, query_start, application_name, extract(epoch FROM clock_timestamp() - query_start),"
                    " left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_activity "
                    "WHERE datname = %s AND wait_event_type = 'Lock'", (self.dbname,)).fetchall()
                self.samples += 1
                for pid, started, app, seconds, query in rows:
                    key = (pid, started)
                    if seconds is not None and seconds * 1000 > self.waits.get(key, (0.0,))[0]:
                        self.waits[key] = (float(seconds) * 1000, app or "", query)
                time.sleep(0.01)

    def longest(self, *, job: bool) -> list[tuple[float, str]]:
        out = [(ms, q) for ms, app, q in self.waits.values() if (app == JOB_APP_NAME) == job]
        return sorted(out, reverse=True)


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--rows", type=int, default=None, help="stale Pending rows (default 100,000; quick 2,000)")
    ap.add_argument("--concurrency", type=int, default=4, help="parents booking meanwhile")
    args = ap.parse_args()
    if importlib.util.find_spec("tutorbook.jobs") is None:
        print("SKIPPED  benchmark 5 (expire 100,000 stale Pending): tutorbook.jobs does not exist")
        return
    rows = args.rows or (2_000 if args.quick else 100_000)
    teachers = 50 if args.quick else 200
    baseline_s = 3.0 if args.quick else 10.0
    dbname = args.db or "tutorbook_bench_expire"
    conc = args.concurrency
    if not args.quick:
        h.wait_for_quiet()

    def attempt():
        h.fresh_database(dbname)
        seed = h.seed_people(dbname, teachers=teachers, parents=max(conc, 16))
        t0 = time.perf_counter()
        info = load_stale(dbname, seed, rows=rows)
        print(f"loaded {info['rows']:,} stale Pending rows in {time.perf_counter() - t0:.1f} s")
        booker = h.Booker(seed, h.Slots(seed.teachers, minutes=60, offset_minutes=30))
        with h.Servers(dbname, workers=args.workers) as srv:
            host, port = "127.0.0.1", srv.app_port
            srv.sandbox_config(latency_ms=0)
            loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=conc, duration=1.0, warmup=0.0,
                                            make=booker, expect=(201,)))
            base_cpu = h.CpuMeter(srv)
            base = loadgen.run(loadgen.closed_loop(
                host, port, name="bookings, no job (baseline)", concurrency=conc, duration=baseline_s, warmup=0.5,
                make=booker, expect=(201,), window=h.windows(base_cpu)))
            print(base.summary())
            print("   ", h.cpu_line(base_cpu.result, base.ok))
            env = srv.env()
            env["TUTORBOOK_DATABASE_URL"] = h.sa_url(dbname) + f"?application_name={JOB_APP_NAME}"
            waits = LockWaits(dbname).start()
            job_cpu = h.CpuMeter(srv)
            command = [sys.executable, str(h.BENCH_DIR / "expire_proc.py")]
            prof_out = h.PROFILES / "expire-job.txt"
            if args.profile:  # wall-clock profile of the job's process, waiting included (--idle)
                h.PROFILES.mkdir(exist_ok=True)
                spy = str(h.VENV_BIN / "py-spy")
                command = [spy, "record", "--idle", "-r", "100", "-f", "raw", "-o", str(prof_out), "--", *command]
            job = subprocess.Popen(command, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=srv.run_dir)
            during = loadgen.run(loadgen.closed_loop(
                host, port, name="bookings while the job runs", concurrency=conc, duration=1800, warmup=0.0,
                make=booker, expect=(201,), window=h.windows(job_cpu), stop_when=lambda: job.poll() is not None))
            out, err = job.communicate(timeout=60)
            waits.stop()
            print(during.summary())
            print("   ", h.cpu_line(job_cpu.result, during.ok))
            if job.returncode != 0:
                raise RuntimeError(f"the expire job failed ({job.returncode}):\n{err[-3000:]}")
            result = json.loads(next(line for line in reversed(out.strip().splitlines()) if line.startswith("{")))
            if args.profile:
                result["profile"] = h.profile_summary(
                    [prof_out], rate=100, duration=result["seconds"], requests=result["items"],
                    categories=JOB_CATEGORIES, what="job wall time (py-spy --idle)").replace("per request", "per row")
                print(result["profile"])
            # The job's process has exited by the end of the window, so /proc cannot be read for it:
            # take its own process_time() and do not count it as "other processes".
            cpu = job_cpu.result
            cpu["job"] = result["cpu_s"]
            cpu["other"] = max(0.0, cpu["other"] - result["cpu_s"])
            cpu["other_cores"] = cpu["other"] / cpu["wall_s"] if cpu["wall_s"] else 0.0
        with psycopg.connect(h.pg_url(dbname)) as conn:
            left = conn.execute("SELECT count(*) FROM private_sessions WHERE status = 0 AND checkout_expires_at < "
                                "now() - interval '5 minutes'").fetchone()[0]
            history = conn.execute("SELECT count(*) FROM session_status_history WHERE actor = 'job:expire'"
                                   ).fetchone()[0]
        value = (base, during, result, waits, left, history, info, base_cpu.result, job_cpu.result)
        return value, [base_cpu.result, job_cpu.result]

    base, during, result, waits, left, history, info, base_cpu, job_cpu = h.least_noisy(args.quick, attempt, tries=args.tries)
    app_waits, job_waits = waits.longest(job=False), waits.longest(job=True)
    worst_wait = app_waits[0][0] if app_waits else 0.0
    delta_p99 = during.pct(99) - base.pct(99)
    print(f"\nexpire job: {result['seconds']:.2f} s for {result['items']:,} items {result['counts']} "
          f"({result['cpu_s']:.1f} s CPU in the job's process); {left:,} stale Pending left; "
          f"{history:,} history rows by job:expire")
    print(f"lock waits of the app's backends (sampled every 10 ms, {waits.samples:,} samples): "
          f"{len(app_waits)}, longest {worst_wait:.0f} ms")
    for ms, q in app_waits[:5]:
        print(f"  {ms:7.1f} ms  {q}")
    if job_waits:
        print(f"lock waits of the job's backend: {len(job_waits)}, longest {job_waits[0][0]:.0f} ms")

    goals = [
        h.Goal("expire.seconds", f"expire job: {result['items']:,} stale Pending in {result['seconds']:.1f} s "
               f"({result['items'] / max(result['seconds'], 0.001):,.0f} rows/s)", "<= 10 s",
               10 / result["seconds"] if result["seconds"] else 0.0),
        h.Goal("expire.lock_waits", f"longest lock wait of a booking during the job: {worst_wait:.0f} ms "
               f"({len(app_waits)} waits seen, sampled every 10 ms)", "<= 100 ms", 100 / max(worst_wait, 1.0)),
        h.Goal("expire.booking_p99", f"booking p99 during the job {during.pct(99):.0f} ms vs {base.pct(99):.0f} ms "
               f"without (+{delta_p99:.0f} ms; max {during.latencies_ms[-1] if during.latencies_ms else 0:.0f} ms)",
               "<= +100 ms", 100 / max(delta_p99, 1.0)),
    ]
    section = "\n\n".join([
        f"{info['rows']:,} stale Pending bookings (checkout expired 10 minutes ago, no Checkout Session: the "
        f"job's no-Stripe path) over {teachers} teachers, loaded with COPY. The job runs once in its own process "
        f"(`benchmarks/expire_proc.py`: `jobs.run(\"expire\", svc, now=...)`, as `tutorbook worker` runs it) while "
        f"{conc} parents keep booking free half hours of the same teachers (uvicorn --workers {args.workers}, "
        "sandbox at 0 ms); pg_stat_activity is sampled every 10 ms for backends waiting on a lock.",
        f"Job: **{result['seconds']:.2f} s** for {result['items']:,} items ({result['counts']}), "
        f"{result['cpu_s']:.1f} s of CPU in the job's process; {left:,} stale Pending left afterwards, "
        f"{history:,} history rows written by `job:expire`.",
        h.md_table(h.LOAD_HEADER, [h.load_row(base), h.load_row(during)]),
        f"Lock waits of the app's backends during the job: {len(app_waits)} seen, longest {worst_wait:.0f} ms"
        + ("" if not app_waits else ":\n\n" + h.md_table(["wait ms", "statement"], [[f"{ms:.0f}", f"`{q}`"]
                                                                                    for ms, q in app_waits[:5]])),
        "CPU milliseconds per booking (from /proc; the job's own CPU is reported above, not counted as 'other processes'):",
        h.md_table(h.CPU_HEADER, [h.cpu_row(base.name, base_cpu, base.ok), h.cpu_row(during.name, job_cpu, during.ok)]),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column)."]
          if h.noisy(base_cpu, job_cpu) else []),
        *([f"Profile of the job's process (`--profile`):\n\n{result['profile']}"] if "profile" in result else []),
    ])
    h.report("expire", goals, section, quick=args.quick, write_docs=args.write_docs, profiled=args.profile,
             extra={"job": result, "left": left, "baseline": base.as_dict(), "during": during.as_dict(),
                    "app_lock_waits_ms": [round(ms, 1) for ms, _ in app_waits[:20]]})


if __name__ == "__main__":
    main()
