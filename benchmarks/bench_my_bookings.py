"""Benchmark 4: My Bookings p99 for a parent with 10,000 bookings among 1,000,000 rows.

Loads 1,000,000 bookings with COPY (1,000 teachers x 1,000 one-hour sessions each, an hour
apart, so no teacher ever has two overlapping rows and the exclusion constraint holds whatever
the status; every FK, CHECK and unique constraint stays on during the load), ~100,000 parents
with a child each, and one parent — the one measured — who owns every 100th row (10,000
bookings over all teachers, past and future). Statuses are realistic: past rows mostly
Completed, future ones mostly Confirmed, 10% paid-then-Cancelled (shown in My Bookings) and
15% Cancelled before payment (hidden from it), a few Pending. Then VACUUM ANALYZE.

It then asks `GET /api/Sessions/my-bookings` (page 1, 20 a page: what the page shows) one
request at a time through the live app and reports the latency percentiles, and prints
EXPLAIN (ANALYZE, BUFFERS) of the exact SQL `repository.my_bookings` sends (captured from
the app's own code). The last page and `repository.overlapping` (the booking path's
conflict check) on a teacher with 1,000 rows are explained too, for information.

Goal (issue #7): p99 <= 20 ms.

    .venv/bin/python benchmarks/bench_my_bookings.py            # 1,000,000 rows (loads in ~1-2 min)
    .venv/bin/python benchmarks/bench_my_bookings.py --reuse    # keep an already loaded database
    .venv/bin/python benchmarks/bench_my_bookings.py --quick    # 100,000 rows, 1,000 for the parent
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import loadgen  # noqa: E402
import psycopg  # noqa: E402

COLUMNS = [
    "id", "parent_id", "student_id", "teacher_id", "subject", "starts_at", "ends_at", "price_amount", "currency",
    "status", "stripe_session_id", "stripe_payment_intent_id", "checkout_url", "checkout_expires_at", "paid_at",
    "cancelled_at", "cancellation_reason", "refunded_amount", "meeting_url", "meeting_provider",
    "meeting_external_id", "meeting_attempts", "meeting_next_attempt_at", "meeting_error", "created_at",
    "updated_at",
]
N = r"\N"


# Covering, not partial: the app's status literal is a bound parameter, and psycopg prepares a
# statement after 5 runs, after which PostgreSQL may use a generic plan — which cannot use a
# partial index `WHERE NOT (status = 3 AND paid_at IS NULL)` (measured: no gain on the live
# server). INCLUDE (status, paid_at) lets the filter be checked in the index, generic plan or not.
WHATIF_INDEX = ("CREATE INDEX IF NOT EXISTS ix_whatif_parent_cover ON private_sessions "
                "(parent_id, starts_at DESC, id) INCLUDE (status, paid_at)")


MY_BOOKINGS_CATEGORIES = [
    ("whole request in the event loop (uvicorn + middleware + FastAPI)", "Server.run"),
    ("worker threads (sync endpoint + dependencies)", "WorkerThread.run"),
    ("... auth: load_user", "load_user"),
    ("... repository.my_bookings (both queries, ORM loading)", "my_bookings (tutorbook/bookings/repository"),
    ("... building SessionOut items", "session_out"),
    ("... pool checkout incl. pre-ping", "_ConnectionFairy._checkout"),
    ("response validation + JSON (FastAPI serialize_response)", "serialize_response"),
]


def overlapping_with_lower_bound(teacher_id, start, end):
    """repository.overlapping()'s query plus `starts_at > start - 120 min` (the longest booking)."""
    import sqlalchemy as sa

    from tutorbook.bookings import repository as repo
    from tutorbook.bookings.models import PrivateSession as PS
    from tutorbook.config import ALLOWED_DURATIONS

    return sa.select(PS).where(
        PS.teacher_id == teacher_id, PS.status.in_(repo.HOLDING), PS.starts_at < end, PS.ends_at > start,
        PS.starts_at > start - timedelta(minutes=max(ALLOWED_DURATIONS)))


def load(dbname: str, *, rows: int, target_rows: int, teachers: int, parents: int) -> dict:
    """Create and fill the database; the target parent's id and the load's timings."""
    t0 = time.perf_counter()
    h.fresh_database(dbname)
    seed = h.seed_people(dbname, teachers=teachers, parents=parents, children=1, tag="big")
    target = h.seed_people(dbname, teachers=0, parents=1, children=3, tag="target")
    target_id = target.parents[0]
    target_kids = [str(k) for k in target.students[target_id]]
    others = [(str(p), str(seed.students[p][0])) for p in seed.parents]
    teacher_ids = [str(t) for t in seed.teachers]
    t_people = time.perf_counter() - t0

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    per_teacher = rows // teachers
    base = now - timedelta(hours=int(per_teacher * 0.7))  # 70% of the rows in the past
    every = rows // target_rows

    hour = timedelta(hours=1)
    times = []  # per hour slot j: the formatted timestamps the rows of that hour use
    for j in range(per_teacher + 1):
        starts = base + j * hour
        created = starts - timedelta(days=3)
        times.append((starts < now, h.ts(starts), h.ts(starts + hour), h.ts(created),
                      h.ts(created + timedelta(minutes=5)), h.ts(created + timedelta(minutes=31)),
                      h.ts(created + timedelta(days=1))))

    def lines():
        for k in range(rows):
            past, starts, ends, created, paid_ts, expires_ts, cancel_ts = times[k // teachers]
            if k % every == 0:
                parent, student = str(target_id), target_kids[k % 3]
            else:
                parent, student = others[(k * 7919) % len(others)]
            kind = (k // every + k) % 20  # varies for the measured parent's rows too
            cs = f"cs_bench_{k}"
            pay = paid = cancelled = reason = meet = provider = N
            refunded = 0
            if not past and k % 1000 == 999:
                status = 0  # Pending, checkout still open
            elif kind < 14 or (past and kind < 15):
                status = 2 if past else 1
                pay, paid = f"pi_bench_{k}", paid_ts
                meet, provider = f"https://meet.jit.si/tutorbook-{k}", "jitsi"
            elif kind < 17:
                status, reason, refunded = 3, "parent_cancelled", 6000
                pay, paid, cancelled = f"pi_bench_{k}", paid_ts, cancel_ts
            else:
                status, reason, cancelled = 3, "checkout_expired", expires_ts
            yield (f"{uuid.uuid4()}\t{parent}\t{student}\t{teacher_ids[k % teachers]}\tMathematics\t{starts}\t"
                   f"{ends}\t6000\tusd\t{status}\t{cs}\t{pay}\thttp://127.0.0.1:12111/c/pay/{cs}\t{expires_ts}\t"
                   f"{paid}\t{cancelled}\t{reason}\t{refunded}\t{meet}\t{provider}\t{N}\t0\t{N}\t{N}\t"
                   f"{created}\t{created}")

    with psycopg.connect(h.pg_url(dbname)) as conn:
        bulk = h.bulk_copy(conn, "private_sessions", COLUMNS, lines())
        conn.commit()
    n = bulk["rows"]
    t2 = time.perf_counter()
    with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) private_sessions")
        conn.execute("VACUUM (ANALYZE) users")
        conn.execute("VACUUM (ANALYZE) students")
        meta = {"rows": n, "target_rows": target_rows, "target": str(target_id), "teacher": teacher_ids[0],
                "teachers": teachers, "parents": parents, "people_s": round(t_people, 1),
                "copy_s": bulk["copy_s"], "constraints_s": bulk["constraints_s"],
                "vacuum_s": round(time.perf_counter() - t2, 1)}
        conn.execute(f"COMMENT ON DATABASE \"{dbname}\" IS '{json.dumps(meta)}'")
    return meta


def loaded(dbname: str) -> dict | None:
    if not h.database_exists(dbname):
        return None
    with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                           (dbname,)).fetchone()
    try:
        return json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--reuse", action="store_true", help="keep the database if it holds this size already")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    ap.add_argument("--what-if", action="store_true",
                    help="also measure with a partial covering index for My Bookings (dropped after) and "
                         "explain overlapping() with a lower bound: evidence for a schema change, not the schema")
    args = ap.parse_args()
    rows, target_rows, teachers, parents = (
        (100_000, 1_000, 100, 10_000) if args.quick else (1_000_000, 10_000, 1_000, 100_000))
    dbname = args.db or ("tutorbook_bench_mb_quick" if args.quick else "tutorbook_bench_mb")
    duration = args.duration or (3.0 if args.quick else 20.0)
    warmup = 1.0 if args.quick else 3.0

    meta = loaded(dbname) if args.reuse else None
    if meta is None or meta.get("rows") != rows or meta.get("target_rows") != target_rows:
        print(f"loading {rows:,} bookings ({target_rows:,} for the measured parent) into {dbname} ...", flush=True)
        meta = load(dbname, rows=rows, target_rows=target_rows, teachers=teachers, parents=parents)
        print(f"  people {meta['people_s']} s, COPY {rows:,} rows {meta['copy_s']} s "
              f"({rows / max(meta['copy_s'], 0.001):,.0f} rows/s), indexes + constraints re-created and "
              f"validated {meta['constraints_s']} s, VACUUM ANALYZE {meta['vacuum_s']} s")
    else:
        print(f"reusing {dbname}: {meta['rows']:,} rows")
    if not args.quick:
        h.wait_for_quiet()
    target = uuid.UUID(meta["target"])

    with psycopg.connect(h.pg_url(dbname)) as conn:
        visible = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT (status = 3 AND paid_at IS NULL)), count(*) FROM private_sessions "
            "WHERE parent_id = %s", (target,)).fetchone()
        total_rows = conn.execute("SELECT count(*) FROM private_sessions").fetchone()[0]
    last_page = (visible[0] + 19) // 20
    print(f"{total_rows:,} rows; the parent has {visible[1]:,} bookings, {visible[0]:,} shown in My Bookings "
          f"({last_page} pages of 20)")

    auth = f"Authorization: Bearer {h.token(target, 'Parent')}\r\n".encode()
    requests = {
        "page 1": ("GET", "/api/Sessions/my-bookings?page=1&pageSize=20", auth, b""),
        f"page {last_page} (last)": ("GET", f"/api/Sessions/my-bookings?page={last_page}&pageSize=20", auth, b""),
    }
    from tutorbook.bookings import repository as repo

    url = h.sa_url(dbname)
    overlap_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2, minutes=30)

    def my_bookings_plans() -> dict:
        """EXPLAIN ANALYZE of the exact SQL repository.my_bookings sends (captured from the app's code)."""
        plans = {}
        for label, page in (("page 1", 1), (f"page {last_page} (last)", last_page)):
            _, sent = h.capture_sql(url, lambda s, page=page: repo.my_bookings(
                s, parent_id=target, page=page, page_size=20))
            plans[label] = [(h.inline(st, p), h.explain(dbname, st, p)) for st, p in sent]
        return plans

    runs, cpus, whatif_runs, profiles = {}, {}, {}, {}
    with h.Servers(dbname, workers=args.workers, sandbox=False) as srv:
        host, port = "127.0.0.1", srv.app_port

        def measure(prefix: str, out: dict) -> None:
            for name, req in requests.items():
                loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=1, duration=1.0,
                                                warmup=0.0, make=lambda i, req=req: req, expect=(200,)))
            for name, req in requests.items():
                meter = h.CpuMeter(srv)
                prof = (h.Profiler(srv, f"my_bookings-{prefix[:7]}{name.split()[1]}", duration)
                        if args.profile and name == "page 1" else None)
                r = loadgen.run(loadgen.closed_loop(host, port, name=f"{prefix}My Bookings, {name}", concurrency=1,
                                                    duration=duration, warmup=warmup, make=lambda i, req=req: req,
                                                    expect=(200,), window=h.windows(meter, prof)))
                if prof is not None:
                    profiles[r.name] = prof.summary(r.ok, MY_BOOKINGS_CATEGORIES)
                    print(profiles[r.name])
                out[name] = r
                cpus[r.name] = meter.result
                print(r.summary())
                print("   ", h.cpu_line(meter.result, r.ok))
                for sample in r.samples:
                    print("    unexpected:", sample)

        measure("", runs)
        plans = my_bookings_plans()
        _, sent = h.capture_sql(url, lambda s: repo.overlapping(
            s, teacher_id=uuid.UUID(meta["teacher"]), start=overlap_start, end=overlap_start + timedelta(minutes=30)))
        overlap_plan = [(h.inline(st, p), h.explain(dbname, st, p)) for st, p in sent]
        whatif_plans, whatif_overlap = {}, []
        if args.what_if:
            print(f"\nwhat-if: {WHATIF_INDEX}")
            with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
                conn.execute(WHATIF_INDEX)
                conn.execute("VACUUM (ANALYZE) private_sessions")  # visibility map: index-only scans
            try:
                measure("what-if index: ", whatif_runs)
                whatif_plans = my_bookings_plans()
            finally:
                with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
                    conn.execute("DROP INDEX IF EXISTS ix_whatif_parent_cover")
                    conn.execute("ANALYZE private_sessions")
            bounded = overlapping_with_lower_bound(uuid.UUID(meta["teacher"]), overlap_start,
                                                   overlap_start + timedelta(minutes=30))
            _, sent = h.capture_sql(url, lambda s: list(s.scalars(bounded)))
            whatif_overlap = [(h.inline(st, p), h.explain(dbname, st, p)) for st, p in sent]

    for label, items in [*plans.items(), *[("what-if " + k, v) for k, v in whatif_plans.items()]]:
        print(f"\n-- repository.my_bookings, {label}:")
        for sql, plan in items:
            print(sql)
            print(plan)
    print("\n-- repository.overlapping on a teacher with "
          f"{rows // teachers:,} bookings (booking path, for information):")
    for sql, plan in overlap_plan + whatif_overlap:
        print(sql)
        print(plan)

    first = runs["page 1"]
    goals = [h.Goal("my_bookings.p99",
                    f"My Bookings p99, page 1, {visible[1]:,} bookings of {total_rows:,} rows: {first.pct(99):.1f} ms "
                    f"(p50 {first.pct(50):.1f})", "<= 20 ms", 20 / first.pct(99) if first.pct(99) else 0.0)]

    def plan_md(items):
        return "\n\n".join(f"```sql\n{sql}\n```\n\n```\n{plan}\n```" for sql, plan in items)

    section = "\n\n".join([
        f"{total_rows:,} bookings loaded with COPY in {meta['copy_s']} s ({meta['teachers']:,} teachers, "
        f"{meta['parents']:,} parents; foreign keys, unique and exclusion constraints and indexes dropped for "
        f"the COPY and re-created — so validated — in {meta['constraints_s']} s in the same transaction, "
        "then VACUUM ANALYZE); the measured parent has "
        f"{visible[1]:,} bookings, {visible[0]:,} of them shown in My Bookings. One request at a time "
        f"through the live app (uvicorn --workers {args.workers}), {duration:g} s per run after {warmup:g} s "
        "warm-up; the latency is the client's round trip (auth, both queries, JSON).",
        h.md_table(h.LOAD_HEADER, [h.load_row(r) for r in [*runs.values(), *whatif_runs.values()]]),
        f"p99 of page 1: **{first.pct(99):.1f} ms** (goal ≤ 20 ms)."
        + (f" With the what-if index (`--what-if`, not the app's schema): {whatif_runs['page 1'].pct(99):.1f} ms."
           if whatif_runs else ""),
        "CPU milliseconds per request over the measured window (from /proc):",
        h.md_table(h.CPU_HEADER, [h.cpu_row(name, cpu, next(r.ok for r in [*runs.values(), *whatif_runs.values()]
                                                              if r.name == name)) for name, cpu in cpus.items()]),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column)."] if h.noisy(*cpus.values()) else []),
        "#### Query plan: `repository.my_bookings`, page 1 (the SQL captured from the app, EXPLAIN (ANALYZE, BUFFERS))",
        plan_md(plans["page 1"]),
        "These are custom plans (EXPLAIN with the values bound). The live app sends the same SQL through "
        "psycopg, which prepares a statement after 5 runs; PostgreSQL may then switch to a generic plan. That "
        "matters for any index fix: the status value is a bound parameter, so a partial index "
        "`WHERE NOT (status = 3 AND paid_at IS NULL)` is not usable by the generic plan (tried: no gain on the "
        "live server); the what-if index below is a covering one for that reason.",
        f"#### Query plan: the last page ({last_page}), for information",
        plan_md(plans[f"page {last_page} (last)"]),
        f"#### Query plan: `repository.overlapping` (the booking path's clash check) for a teacher with "
        f"{rows // teachers:,} bookings, for information",
        plan_md(overlap_plan),
        *[f"Profile of `{name}`:\n\n{text}" for name, text in profiles.items()],
        *([f"#### What-if (`--what-if`): the index `{WHATIF_INDEX}` — created for the measurement, dropped after",
           "Page 1 with it:", plan_md(whatif_plans["page 1"]),
           "And `overlapping` with a lower bound on starts_at (no booking is longer than 120 minutes, so "
           "`starts_at > start - 120 min` loses nothing):", plan_md(whatif_overlap)] if whatif_plans else []),
    ])
    h.report("my_bookings", goals, section, quick=args.quick, write_docs=args.write_docs, profiled=args.profile,
             extra={"load": meta, "runs": {k: v.as_dict() for k, v in runs.items()},
                    "what_if_runs": {k: v.as_dict() for k, v in whatif_runs.items()}})


if __name__ == "__main__":
    main()
