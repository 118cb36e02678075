"""Benchmark 4: My Bookings p99 for a parent with 10,000 bookings among 1,000,000 rows, every
page of it, and the teacher's schedule.

Loads 1,000,000 bookings with COPY (1,000 teachers x 1,000 one-hour sessions each, an hour
apart, so no teacher ever has two overlapping rows and the exclusion constraint holds whatever
the status; every FK, CHECK and unique constraint stays on during the load), ~100,000 parents
with a child each, and one parent — the one measured — who owns every 100th row (10,000
bookings over all teachers, past and future). Statuses are realistic: past rows mostly
Completed, future ones mostly Confirmed, 10% paid-then-Cancelled (shown in My Bookings) and
15% Cancelled before payment (hidden from it), a few Pending. Then VACUUM ANALYZE.

It then asks, one request at a time through the live app, and reports the latency percentiles:
- `GET /api/Sessions/my-bookings`, page 1 (20 a page: what the page shows);
- its last page by cursor (`after` = the cursor of the row before it: where a walk by
  `nextCursor` arrives), and the same page by number (`page=`, OFFSET), for comparison;
- `GET /api/Sessions/teacher-schedule` of a teacher with 1,000 bookings: the last page of 20 by
  cursor, and the first page with the default page size (100), for information.
It prints EXPLAIN (ANALYZE, BUFFERS) of the exact SQL the repository sends for each (captured
from the app's own code), times the `total` count alone (it runs on every My Bookings page), and
explains `repository.overlapping` (the booking path's conflict check) for information.

Goals: p99 <= 20 ms for My Bookings' first page (issue #7), its last page by cursor and the
schedule's last page by cursor (issue #18).

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
from urllib.parse import urlencode

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
    ("... lists.my_bookings (both queries, ORM loading)", "my_bookings (tutorbook/bookings/lists"),
    ("... building SessionOut items", "session_out"),
    ("... pool checkout incl. pre-ping", "_ConnectionFairy._checkout"),
    ("response validation + JSON (FastAPI serialize_response)", "serialize_response"),
]


def overlapping_with_lower_bound(teacher_id, start, end):
    """repository.overlapping()'s query plus `starts_at > start - 120 min` (the longest booking)."""
    import sqlalchemy as sa

    from tutorbook.bookings import repository as repo
    from tutorbook.bookings.models import Booking as PS
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


def before_page(dbname: str, sql: str, owner: uuid.UUID, page: int) -> tuple[datetime, uuid.UUID]:
    """(starts_at, id) of the last row before page `page` (20 a page) in `sql`'s order: its cursor."""
    with psycopg.connect(h.pg_url(dbname)) as conn:
        return conn.execute(sql + " OFFSET %s LIMIT 1", (owner, (page - 1) * 20 - 1)).fetchone()


MY_ORDER = ("SELECT starts_at, id FROM private_sessions WHERE parent_id = %s "
            "AND NOT (status = 3 AND paid_at IS NULL) ORDER BY starts_at DESC, id")
SCHEDULE_ORDER = ("SELECT starts_at, id FROM private_sessions WHERE teacher_id = %s AND paid_at IS NOT NULL "
                  "ORDER BY starts_at, id")


def time_count(url: str, parent_id: uuid.UUID, cursor, *, runs: int) -> dict:
    """p50/p99 ms of lists.count_my_bookings alone (the `total` and the page number), through
    the app's own Database and session (one transaction, so no pool checkout), after a warm-up."""
    from tutorbook.bookings import lists
    from tutorbook.db import Database

    db = Database(url, pool_size=1)
    times = []
    try:
        with db.session_scope() as s:
            for i in range(runs + 20):
                t0 = time.perf_counter()
                lists.count_my_bookings(s, parent_id=parent_id, through=cursor)
                if i >= 20:
                    times.append((time.perf_counter() - t0) * 1000)
    finally:
        db.dispose()
    times.sort()
    return {"runs": runs, "p50": times[len(times) // 2], "p99": times[min(len(times) - 1, int(len(times) * 0.99))]}


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
    target, teacher = uuid.UUID(meta["target"]), uuid.UUID(meta["teacher"])

    with psycopg.connect(h.pg_url(dbname)) as conn:
        visible = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT (status = 3 AND paid_at IS NULL)), count(*) FROM private_sessions "
            "WHERE parent_id = %s", (target,)).fetchone()
        total_rows = conn.execute("SELECT count(*) FROM private_sessions").fetchone()[0]
        paid = conn.execute("SELECT count(*) FROM private_sessions WHERE teacher_id = %s AND paid_at IS NOT NULL",
                            (teacher,)).fetchone()[0]
    last_page, schedule_last = (visible[0] + 19) // 20, (paid + 19) // 20
    print(f"{total_rows:,} rows; the parent has {visible[1]:,} bookings, {visible[0]:,} shown in My Bookings "
          f"({last_page} pages of 20); the teacher has {paid:,} paid sessions ({schedule_last} pages of 20)")

    from tutorbook import paging
    from tutorbook.bookings import lists
    from tutorbook.bookings import repository as repo

    my_cursor = before_page(dbname, MY_ORDER, target, last_page)
    schedule_cursor = before_page(dbname, SCHEDULE_ORDER, teacher, schedule_last)
    parent_auth = f"Authorization: Bearer {h.token(target, 'Parent')}\r\n".encode()
    teacher_auth = f"Authorization: Bearer {h.token(teacher, 'Teacher')}\r\n".encode()
    first_run, cursor_run = "My Bookings, page 1", f"My Bookings, page {last_page} (last) by cursor"
    schedule_run = f"teacher schedule, page {schedule_last} (last) by cursor"
    offset_run = f"My Bookings, page {last_page} (last) by number (OFFSET)"
    requests = {
        first_run: ("GET", "/api/Sessions/my-bookings?page=1&pageSize=20", parent_auth, b""),
        cursor_run: ("GET", "/api/Sessions/my-bookings?" + urlencode(
            {"pageSize": 20, "after": paging.encode_cursor(*my_cursor)}), parent_auth, b""),
        offset_run: ("GET", f"/api/Sessions/my-bookings?page={last_page}&pageSize=20", parent_auth, b""),
        schedule_run: ("GET", "/api/Sessions/teacher-schedule?" + urlencode(
            {"pageSize": 20, "after": paging.encode_cursor(*schedule_cursor)}), teacher_auth, b""),
        "teacher schedule, page 1 of 100 (the default size)": (
            "GET", "/api/Sessions/teacher-schedule", teacher_auth, b""),
    }

    url = h.sa_url(dbname)
    overlap_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2, minutes=30)

    def explained(fn) -> list[tuple[str, str]]:
        _, sent = h.capture_sql(url, fn)
        return [(h.inline(st, p), h.explain(dbname, st, p)) for st, p in sent]

    def my_bookings_plans() -> dict:
        """EXPLAIN ANALYZE of the exact SQL each My Bookings request sends (captured from the app's code)."""
        return {
            "page 1": explained(lambda s: (lists.my_bookings(s, parent_id=target, page_size=20),
                                           lists.count_my_bookings(s, parent_id=target))),
            "cursor": explained(lambda s: (lists.my_bookings(s, parent_id=target, page_size=20, after=my_cursor),
                                           lists.count_my_bookings(s, parent_id=target, through=my_cursor))),
            "offset": explained(lambda s: lists.my_bookings(s, parent_id=target, page_size=20, page=last_page)),
        }

    runs, cpus, whatif_runs, profiles = {}, {}, {}, {}
    with h.Servers(dbname, workers=args.workers, sandbox=False) as srv:
        host, port = "127.0.0.1", srv.app_port

        def measure(prefix: str, out: dict, names) -> None:
            for name in names:
                req = requests[name]
                loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=1, duration=1.0,
                                                warmup=0.0, make=lambda i, req=req: req, expect=(200,)))
            for name in names:
                req = requests[name]
                meter = h.CpuMeter(srv)
                prof = (h.Profiler(srv, f"my_bookings-{prefix[:7]}{len(out)}", duration)
                        if args.profile and name == first_run else None)
                r = loadgen.run(loadgen.closed_loop(host, port, name=f"{prefix}{name}", concurrency=1,
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

        measure("", runs, list(requests))
        count_times = time_count(url, target, my_cursor, runs=200 if args.quick else 1000)
        print(f"count_my_bookings alone (total + page number, {visible[0]:,} rows): "
              f"p50 {count_times['p50']:.2f} ms, p99 {count_times['p99']:.2f} ms")
        plans = my_bookings_plans()
        schedule_plans = {
            "cursor": explained(lambda s: lists.teacher_schedule(
                s, teacher_id=teacher, start=None, end=None, limit=20, after=schedule_cursor)),
            "first": explained(lambda s: lists.teacher_schedule(s, teacher_id=teacher, start=None, end=None, limit=100)),
        }
        overlap_plan = explained(lambda s: repo.overlapping(
            s, teacher_id=teacher, start=overlap_start, end=overlap_start + timedelta(minutes=30)))
        whatif_plans, whatif_overlap = {}, []
        if args.what_if:
            print(f"\nwhat-if: {WHATIF_INDEX}")
            with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
                conn.execute(WHATIF_INDEX)
                conn.execute("VACUUM (ANALYZE) private_sessions")  # visibility map: index-only scans
            try:
                measure("what-if index: ", whatif_runs, [first_run])
                whatif_plans = my_bookings_plans()
            finally:
                with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
                    conn.execute("DROP INDEX IF EXISTS ix_whatif_parent_cover")
                    conn.execute("ANALYZE private_sessions")
            bounded = overlapping_with_lower_bound(teacher, overlap_start, overlap_start + timedelta(minutes=30))
            whatif_overlap = explained(lambda s: list(s.scalars(bounded)))

    for label, items in [*plans.items(), *[("what-if " + k, v) for k, v in whatif_plans.items()],
                         *[("schedule " + k, v) for k, v in schedule_plans.items()]]:
        print(f"\n-- {label}:")
        for sql, plan in items:
            print(sql)
            print(plan)
    print("\n-- repository.overlapping on a teacher with "
          f"{rows // teachers:,} bookings (booking path, for information):")
    for sql, plan in overlap_plan + whatif_overlap:
        print(sql)
        print(plan)

    def goal(key: str, run: str, what: str) -> h.Goal:
        r = runs[run]
        return h.Goal(key, f"{what}: {r.pct(99):.1f} ms (p50 {r.pct(50):.1f})", "<= 20 ms",
                      20 / r.pct(99) if r.pct(99) else 0.0)

    of = f"{visible[1]:,} bookings of {total_rows:,} rows"
    goals = [
        goal("my_bookings.p99", first_run, f"My Bookings p99, page 1, {of}"),
        goal("my_bookings.cursor_last.p99", cursor_run, f"My Bookings p99, last page ({last_page}) by cursor, {of}"),
        goal("my_bookings.schedule_last.p99", schedule_run,
             f"teacher schedule p99, last page ({schedule_last}, 20 a page) by cursor, {rows // teachers:,} bookings"),
    ]

    def plan_md(items):
        return "\n\n".join(f"```sql\n{sql}\n```\n\n```\n{plan}\n```" for sql, plan in items)

    all_runs = [*runs.values(), *whatif_runs.values()]
    section = "\n\n".join([
        f"{total_rows:,} bookings loaded with COPY in {meta['copy_s']} s ({meta['teachers']:,} teachers, "
        f"{meta['parents']:,} parents; foreign keys, unique and exclusion constraints and indexes dropped for "
        f"the COPY and re-created — so validated — in {meta['constraints_s']} s in the same transaction, "
        "then VACUUM ANALYZE); the measured parent has "
        f"{visible[1]:,} bookings, {visible[0]:,} of them shown in My Bookings ({last_page} pages of 20), the "
        f"measured teacher {paid:,} paid sessions ({schedule_last} pages of 20). One request at a time "
        f"through the live app (uvicorn --workers {args.workers}), {duration:g} s per run after {warmup:g} s "
        "warm-up; the latency is the client's round trip (auth, the queries, JSON). The last pages by cursor "
        "are asked with the cursor a walk by `nextCursor` (My Bookings) or the `Link` header (the schedule) "
        "arrives with.",
        h.md_table(h.LOAD_HEADER, [h.load_row(r) for r in all_runs]),
        "p99: " + "; ".join(f"{label} **{runs[n].pct(99):.1f} ms**" for label, n in (
            ("My Bookings' page 1", first_run), ("its last page by cursor", cursor_run),
            ("the schedule's last page by cursor", schedule_run)))
        + f" (goal ≤ 20 ms each); My Bookings' last page by number (OFFSET) {runs[offset_run].pct(99):.1f} ms."
        + (f" With the what-if index (`--what-if`, not the app's schema): {whatif_runs[first_run].pct(99):.1f} ms "
           "on page 1." if whatif_runs else ""),
        f"`lists.count_my_bookings` alone (the `total` and, on a cursor page, the page number; "
        f"{visible[0]:,} rows, through the app's session, {count_times['runs']:,} runs): p50 "
        f"{count_times['p50']:.2f} ms, p99 {count_times['p99']:.2f} ms.",
        "CPU milliseconds per request over the measured window (from /proc):",
        h.md_table(h.CPU_HEADER, [h.cpu_row(name, cpu, next(r.ok for r in all_runs if r.name == name))
                                  for name, cpu in cpus.items()]),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column)."] if h.noisy(*cpus.values()) else []),
        "#### Query plan: My Bookings, page 1 (the SQL captured from the app, EXPLAIN (ANALYZE, BUFFERS))",
        plan_md(plans["page 1"]),
        "These are custom plans (EXPLAIN with the values bound). The live app sends the same SQL through "
        "psycopg, which prepares a statement after 5 runs; PostgreSQL may then switch to a generic plan. That "
        "matters for any index fix: the status value is a bound parameter, so a partial index "
        "`WHERE NOT (status = 3 AND paid_at IS NULL)` is not usable by the generic plan (tried: no gain on the "
        "live server); the what-if index below is a covering one for that reason.",
        f"#### Query plan: My Bookings, the last page ({last_page}) by cursor",
        plan_md(plans["cursor"]),
        f"#### Query plan: My Bookings, the last page ({last_page}) by number (OFFSET), for comparison "
        "(its count is page 1's)",
        plan_md(plans["offset"]),
        f"#### Query plan: the teacher's schedule, the last page ({schedule_last}) by cursor",
        plan_md(schedule_plans["cursor"]),
        "#### Query plan: the teacher's schedule, page 1 of the default size (100), for information",
        plan_md(schedule_plans["first"]),
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
                    "what_if_runs": {k: v.as_dict() for k, v in whatif_runs.items()}, "count_ms": count_times})


if __name__ == "__main__":
    main()
