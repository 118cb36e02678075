"""Benchmark 6: the operator console's booking search (issue #16) at 1,000,000 bookings.

Loads the same 1,000,000 bookings as bench_my_bookings.py (its `load`, into its own database)
plus one admin, then asks `GET /api/Admin/bookings` — the query /admin/bookings runs, 25 a page,
newest start first, keyset pages — one request at a time through the live app, for each kind of
filter an operator uses: a status, a teacher, a parent, a child, a status within a date range,
a Stripe checkout id, a payment intent id, and a status page half a million rows deep (the
cursor of row 500,000: a keyset page costs the same there as on top). Prints the latency
percentiles and EXPLAIN (ANALYZE, BUFFERS) of the exact SQL `queries.search` sends.

Goal (issue #16): the p99 of every filtered page within My Bookings' goal, <= 20 ms.

    .venv/bin/python benchmarks/bench_admin_bookings.py            # 1,000,000 rows (loads in ~1-2 min)
    .venv/bin/python benchmarks/bench_admin_bookings.py --reuse    # keep an already loaded database
    .venv/bin/python benchmarks/bench_admin_bookings.py --quick    # 100,000 rows (CI)
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_my_bookings as mb  # noqa: E402
import harness as h  # noqa: E402
import loadgen  # noqa: E402
import psycopg  # noqa: E402

GOAL_MS = 20.0


def add_admin(dbname: str) -> uuid.UUID:
    admin = uuid.uuid4()
    with psycopg.connect(h.pg_url(dbname)) as conn:
        conn.execute(
            "INSERT INTO users (id, email, password_hash, full_name, role, time_zone, created_at) "
            "VALUES (%s, %s, 'x', 'Bench Admin', 'Admin', 'UTC', now())",
            (admin, f"admin-{admin.hex[:8]}@bench.example"),
        )
    return admin


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--reuse", action="store_true", help="keep the database if it holds this size already")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    args = ap.parse_args()
    rows, target_rows, teachers, parents = (
        (100_000, 1_000, 100, 10_000) if args.quick else (1_000_000, 10_000, 1_000, 100_000))
    dbname = args.db or ("tutorbook_bench_admin_quick" if args.quick else "tutorbook_bench_admin")
    duration = args.duration or (2.0 if args.quick else 10.0)
    warmup = 0.5 if args.quick else 2.0

    meta = mb.loaded(dbname) if args.reuse else None
    if meta is None or meta.get("rows") != rows:
        print(f"loading {rows:,} bookings into {dbname} ...", flush=True)
        meta = mb.load(dbname, rows=rows, target_rows=target_rows, teachers=teachers, parents=parents)
    else:
        print(f"reusing {dbname}: {meta['rows']:,} rows")
    if not args.quick:
        h.wait_for_quiet()
    admin = add_admin(dbname)
    with psycopg.connect(h.pg_url(dbname)) as conn:
        child = conn.execute("SELECT student_id FROM private_sessions WHERE parent_id = %s LIMIT 1",
                             (meta["target"],)).fetchone()[0]
        some = conn.execute("SELECT stripe_session_id, stripe_payment_intent_id FROM private_sessions "
                            "WHERE stripe_payment_intent_id IS NOT NULL OFFSET %s LIMIT 1", (rows // 3,)).fetchone()
        deep = conn.execute("SELECT starts_at, id FROM private_sessions WHERE status = 2 "
                            "ORDER BY starts_at DESC, id OFFSET %s LIMIT 1", (rows // 2,)).fetchone()
    from tutorbook import paging
    from tutorbook.admin import search as admin_search
    from tutorbook.bookings import queries

    day = datetime.now(UTC).date() + timedelta(days=3)
    filters = {
        "status Confirmed": {"status": "1"},
        "teacher": {"teacher": meta["teacher"]},
        "parent": {"parent": meta["target"]},
        "child": {"child": str(child)},
        "status + a week": {"status": "1", "from": day.isoformat(), "to": (day + timedelta(days=6)).isoformat()},
        "checkout id": {"q": some[0]},
        "payment intent id": {"q": some[1]},
        f"status Completed, row {rows // 2:,}": {"status": "2", "after": paging.encode_cursor(deep[0], deep[1])},
    }
    auth = f"Authorization: Bearer {h.token(admin, 'Admin')}\r\n".encode()
    requests = {name: ("GET", "/api/Admin/bookings?" + urlencode(p), auth, b"") for name, p in filters.items()}

    url = h.sa_url(dbname)
    plans = {}
    for name, p in filters.items():
        def run(s, p=p):
            search = admin_search.parse_search(s, zone="UTC", status=p.get("status"), teacher=p.get("teacher"),
                                          parent=p.get("parent"), child=p.get("child"), date_from=p.get("from"),
                                          date_to=p.get("to"), q=p.get("q"))
            return queries.search(s, where=search, after=paging.decode_cursor(p.get("after")), limit=admin_search.PAGE_SIZE)
        _, sent = h.capture_sql(url, run)
        plans[name] = [(h.inline(st, prm), h.explain(dbname, st, prm)) for st, prm in sent
                       if "private_sessions" in st]

    runs, cpus = {}, {}
    with h.Servers(dbname, workers=args.workers, sandbox=False) as srv:
        host, port = "127.0.0.1", srv.app_port
        for name, req in requests.items():
            loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=1, duration=0.5, warmup=0.0,
                                            make=lambda i, req=req: req, expect=(200,)))
        for name, req in requests.items():
            meter = h.CpuMeter(srv)
            r = loadgen.run(loadgen.closed_loop(host, port, name=f"Admin bookings, {name}", concurrency=1,
                                                duration=duration, warmup=warmup, make=lambda i, req=req: req,
                                                expect=(200,), window=h.windows(meter, None)))
            runs[name], cpus[r.name] = r, meter.result
            print(r.summary())
            for sample in r.samples:
                print("    unexpected:", sample)

    worst_name, worst = max(runs.items(), key=lambda kv: kv[1].pct(99))
    p99 = worst.pct(99)
    goals = [h.Goal("admin_bookings.p99",
                    f"console booking search, worst filtered page p99 ({worst_name}), {meta['rows']:,} rows: "
                    f"{p99:.1f} ms", f"<= {GOAL_MS:g} ms", GOAL_MS / p99 if p99 else 0.0)]

    def plan_md(items):
        return "\n\n".join(f"```sql\n{sql}\n```\n\n```\n{plan}\n```" for sql, plan in items)

    section = "\n\n".join([
        f"{meta['rows']:,} bookings (the load of section 4, in its own database) and one admin. "
        f"`GET /api/Admin/bookings` (what /admin/bookings runs: 25 a page, newest start first, keyset "
        f"pages) one request at a time through the live app (uvicorn --workers {args.workers}), {duration:g} s "
        f"per filter after {warmup:g} s warm-up; the latency is the client's round trip (auth, the teacher / "
        "parent lookup, the page query with the names, JSON).",
        h.md_table(h.LOAD_HEADER, [h.load_row(r) for r in runs.values()]),
        f"Worst p99: **{p99:.1f} ms** ({worst_name}; goal ≤ {GOAL_MS:g} ms, My Bookings' goal).",
        "CPU milliseconds per request over the measured window (from /proc):",
        h.md_table(h.CPU_HEADER, [h.cpu_row(n, cpu, next(r.ok for r in runs.values() if r.name == n))
                                  for n, cpu in cpus.items()]),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column)."] if h.noisy(*cpus.values()) else []),
        *[f"#### Query plan: {name}\n\n{plan_md(items)}" for name, items in plans.items()],
    ])
    h.report("admin_bookings", goals, section, quick=args.quick, write_docs=args.write_docs,
             extra={"load": meta, "runs": {k: v.as_dict() for k, v in runs.items()}})


if __name__ == "__main__":
    main()
