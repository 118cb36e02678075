"""SQL statements and app CPU per request, route by route (issue #27's regression hunt).

The app runs in this process (uvicorn in a thread, as the tests run it), the Stripe sandbox in a
process of its own, the client in the main thread. A SQLAlchemy event listener counts every
statement sent while a request (or what it started: the webhook's follow-ups) is being served,
keyed by the route; the app's CPU is this process's minus the main thread's, per phase:

  book      POST /api/Sessions/book (a free slot each time)
  webhook   the parent pays on the sandbox's page; its events delivered to the app, until every
            booking is Confirmed
  confirm   POST /api/Sessions/confirm-payment/{cs} (the success page's call), after the webhook
  my        GET /api/Sessions/my-bookings
  avail     GET /api/Teachers/{id}/availability (a new week each call: no cache hit)
  teachers  GET /api/Teachers (the whole list, as the mix asks for it)
  availhit  GET /api/Teachers/{id}/availability, one week again and again (the cache's hit)
  cancel    book, then POST /api/Sessions/cancel-payment/{cs} (the parent's Back)
  credit    POST /api/Sessions/book with `payWith: credit` (issue #28; a lot granted first; skipped
            on a tree without credits)

It imports only what every tree since 41d0ecb has, so the same file measures another checkout:

    PYTHONPATH=/work/wt/before/src:/work/wt/before .venv/bin/python benchmarks/probe_statement_counts.py
    .venv/bin/python benchmarks/probe_statement_counts.py --db sqlite --show book

PostgreSQL: a database of its own (`probe_counts_<pid>`), dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import contextvars
import cProfile
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from tests import factories as f
from tests.support.payments import pay
from tests.support.servers import ThreadedServer, free_port, http_get, http_post

from tutorbook.app import create_app
from tutorbook.config import Settings
from tutorbook.db import Database
from tutorbook.migrate import upgrade

PG_ADMIN = os.environ.get("TUTORBOOK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROUTE: contextvars.ContextVar[str | None] = contextvars.ContextVar("probe_route", default=None)
COUNTS: collections.Counter[str] = collections.Counter()
REQUESTS: collections.Counter[str] = collections.Counter()
STATEMENTS: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
TRACE: list[str] = []
PHASE: list[str | None] = [None]
TRACED: dict[tuple[str, str], list[str]] = {}
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|cs_test_\w+")


def _count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
    route = ROUTE.get()
    if route is not None:
        COUNTS[route] += 1
        text = " ".join(statement.split())[:160]
        STATEMENTS[route][text] += 1
        if PHASE[0] is not None:  # the phase's own statements (two phases may share a route)
            COUNTS[f"phase {PHASE[0]}"] += 1
            STATEMENTS[f"phase {PHASE[0]}"][text] += 1
        for pattern in TRACE:
            if pattern in text and (route, pattern) not in TRACED:
                TRACED[(route, pattern)] = [
                    f"{fr.filename.split('/src/')[-1]}:{fr.lineno} {fr.name}"
                    for fr in traceback.extract_stack()
                    if "/src/tutorbook/" in fr.filename
                ]


def tagged(app):  # noqa: ANN001, ANN201
    """The app, with each HTTP request's route set in ROUTE while it (and what it spawns) runs."""

    async def wrapper(scope, receive, send):  # noqa: ANN001, ANN202
        if scope["type"] != "http":
            return await app(scope, receive, send)
        key = f"{scope['method']} {_IDS.sub('{id}', scope['path'])}"
        REQUESTS[key] += 1
        token = ROUTE.set(key)
        try:
            return await app(scope, receive, send)
        finally:
            ROUTE.reset(token)

    wrapper.state = app.state  # type: ignore[attr-defined]
    return wrapper


PROFILES: list[cProfile.Profile] = []
DUMPED: list[list[tuple[str, float, float]]] = []


def _profile_thread(frame, event, arg) -> None:  # noqa: ANN001
    """Each thread started after --profile: a cProfile of its own, on from its first call."""
    sys.setprofile(None)
    profile = cProfile.Profile()
    PROFILES.append(profile)
    profile.enable()


def _label(code: object) -> str:
    if isinstance(code, str):
        return code
    filename = getattr(code, "co_filename", "?")
    short = filename.split("/site-packages/")[-1].split("/src/")[-1]
    return f"{short}:{getattr(code, 'co_firstlineno', 0)}({getattr(code, 'co_name', '?')})"


def profile_snapshot() -> dict[str, tuple[int, float]]:
    """(calls, own seconds) per function, summed over the app's threads, as of now."""
    out: dict[str, tuple[int, float]] = {}
    for profile in PROFILES:
        for entry in profile.getstats():  # type: ignore[attr-defined]
            key = _label(entry.code)
            calls, own = out.get(key, (0, 0.0))
            out[key] = (calls + entry.callcount, own + entry.inlinetime)
    return out


def profile_diff(before: dict, after: dict, n: int, top: int) -> str:
    rows = []
    for key, (calls, own) in after.items():
        c0, o0 = before.get(key, (0, 0.0))
        if calls - c0:
            rows.append((key, (calls - c0) / n, (own - o0) / n))
    DUMPED.append(rows)
    total_calls = sum(r[1] for r in rows)
    lines = [f"   python calls per operation: {total_calls:,.0f}"]
    lines += [f"   {c:8.1f} calls {o * 1e6:8.0f} us  {k}" for k, c, o in sorted(rows, key=lambda r: -r[2])[:top]]
    return "\n".join(lines)


def app_cpu() -> float:
    """CPU seconds of every thread but the main one (the client's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime - time.thread_time()


def database(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'probe.db'}", None
    name = f"probe_counts_{os.getpid()}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), name


def drop(name: str | None) -> None:
    if name is None:
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def wait_confirmed(db: Database, n_expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            done = conn.exec_driver_sql("SELECT count(*) FROM private_sessions WHERE status = 1").scalar()
        if done >= n_expected:
            return
        time.sleep(0.05)
    raise SystemExit(f"only {done} of {n_expected} bookings confirmed")


def grant_credits(db: Database, *, parent: dict, teacher: dict, lessons: int) -> bool:
    """Issue #28: a lot of `lessons` 30-minute credits of `teacher` for `parent` (an operator's
    grant); False on a tree without credits."""
    try:
        from tutorbook.credits import ledger
        from tutorbook.credits.models import EntryKind
    except ImportError:
        return False
    now = datetime.now(UTC)
    with db.session_scope() as session:
        ledger.add_lot(
            session, parent_id=uuid.UUID(parent["user"]["id"]), teacher_id=uuid.UUID(teacher["user"]["id"]),
            duration_minutes=30, lessons=lessons, unit_amount=3000, currency="usd",
            expires_at=now + timedelta(days=365), kind=EntryKind.ADJUST, actor="probe", now=now, amount=0,
        )  # fmt: skip
    return True


def f_book_credit(p: dict, t: dict, *, starts_at: str):  # noqa: ANN201
    return p["client"].post(
        "/api/Sessions/book",
        json={"teacherId": t["user"]["id"], "studentId": p["students"][0], "subject": "Mathematics",
              "startsAt": starts_at, "durationMinutes": 30, "payWith": "credit"},
    )  # fmt: skip


def main() -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("-n", type=int, default=40, help="operations per phase")
    ap.add_argument("--show", action="append", default=[], help="print the statements of routes containing this")
    ap.add_argument("--trace", action="append", default=[], help="print where a statement containing this is sent")
    ap.add_argument("--profile", action="store_true", help="cProfile the app's threads; calls per operation by phase")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--dump", help="with --profile: write every phase's rows (function, calls, own s) as JSON here")
    args = ap.parse_args()
    TRACE.extend(args.trace)
    import tutorbook

    print(f"tree: {Path(tutorbook.__file__).parents[2]}  db: {args.db}  n: {args.n}")
    tmp = Path(tempfile.mkdtemp(prefix="probe_counts_"))
    url, pg_name = database(args.db, tmp)
    sandbox = None
    server = None
    try:
        upgrade(url)
        db = Database(url, pool_size=10)
        port, sb_port = free_port(), free_port()
        base, sb_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sb_port}"
        sandbox = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sandbox_proc.py")), "--port", str(sb_port),
             "--db", str(tmp / "sandbox.db"), "--webhook-url", f"{base}/api/StripeWebhook/webhook",
             "--webhook-secret", "whsec_test_secret"],
        )  # fmt: skip
        settings = Settings(
            database_url=url,
            var_dir=tmp / "var",
            jwt_secret="probe-secret-" + "x" * 32,
            stripe_webhook_secret="whsec_test_secret",
            stripe_connect_webhook_secret="whsec_test_connect_secret",
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            argon2_parallelism=1,
            jobs_enabled=False,
            log_json=True,
            log_level="WARNING",
            stripe_max_network_retries=0,
            public_url=base,
            sandbox_url=sb_url,
        ).resolved()
        app = create_app(settings, db=db)
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", _count)
        if args.profile:
            threading.setprofile(_profile_thread)
        server = ThreadedServer(tagged(app), port=port).start()
        for _ in range(200):
            try:
                if http_get(f"{sb_url}/_sandbox/config").status_code < 500:
                    break
            except Exception:  # noqa: BLE001
                time.sleep(0.1)
        http_post(f"{sb_url}/_sandbox/config", json={"latency_ms": 0, "connect_enabled": True})
        import httpx

        c = httpx.Client(base_url=base, timeout=60)
        teachers = [f.teacher(c) for _ in range(2)]
        parent = f.parent(c)
        n = args.n
        # Warm every path once (first-call compilation and caches), then reset the counters.
        r = f.book(parent, teachers[1], starts_at=f.slot(days=3, hour=1))
        assert r.status_code == 201, r.text
        pay(r.json()["data"]["checkoutUrl"])
        wait_confirmed(db, 1)
        parent["client"].post(f"/api/Sessions/confirm-payment/{r.json()['data']['stripeSessionId']}")
        parent["client"].get("/api/Sessions/my-bookings")
        parent["client"].get(f"/api/Teachers/{teachers[1]['user']['id']}/availability")
        with_credits = grant_credits(db, parent=parent, teacher=teachers[0], lessons=10 * args.n + 10)
        if with_credits:
            r = f_book_credit(parent, teachers[0], starts_at=f.slot(days=4, hour=1))
            assert r.status_code == 201, r.text
        COUNTS.clear()
        REQUESTS.clear()
        STATEMENTS.clear()

        cpu: dict[str, float] = {}
        t0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=5)
        teacher = teachers[0]

        profiles: dict[str, str] = {}
        dumped: dict[str, list] = {}

        def phase(name: str, fn) -> None:  # noqa: ANN001
            snap = profile_snapshot() if args.profile else {}
            start = app_cpu()
            PHASE[0] = name
            fn()
            time.sleep(0.3)  # what the requests spawned (follow-ups) ends
            PHASE[0] = None
            cpu[name] = (app_cpu() - start - 0.0) / n
            if args.profile:
                profiles[name] = profile_diff(snap, profile_snapshot(), n, args.top)
                if args.dump:
                    dumped[name] = DUMPED[-1]

        booked: list[dict] = []

        def book() -> None:
            for i in range(n):
                at = (t0 + timedelta(hours=i)).isoformat().replace("+00:00", "Z")
                r = f.book(parent, teacher, starts_at=at, duration=30)
                assert r.status_code == 201, r.text
                booked.append(r.json()["data"])

        def webhooks() -> None:
            for b in booked:
                assert pay(b["checkoutUrl"]).status_code in (302, 303)
            wait_confirmed(db, n + 1)

        def confirm() -> None:
            for b in booked:
                r = parent["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
                assert r.status_code == 200, r.text

        def my() -> None:
            for _ in range(n):
                r = parent["client"].get("/api/Sessions/my-bookings")
                assert r.status_code == 200, r.text

        def avail() -> None:
            for i in range(n):
                start = (t0 + timedelta(days=7 * (i + 1))).isoformat().replace("+00:00", "Z")
                end = (t0 + timedelta(days=7 * (i + 2))).isoformat().replace("+00:00", "Z")
                r = parent["client"].get(
                    f"/api/Teachers/{teacher['user']['id']}/availability", params={"from": start, "to": end}
                )
                assert r.status_code == 200, r.text

        def teachers_list() -> None:
            for _ in range(n):
                r = c.get("/api/Teachers")
                assert r.status_code == 200, r.text

        def avail_hit() -> None:
            start = (t0 + timedelta(days=1)).isoformat().replace("+00:00", "Z")
            end = (t0 + timedelta(days=8)).isoformat().replace("+00:00", "Z")
            for _ in range(n):
                r = parent["client"].get(
                    f"/api/Teachers/{teacher['user']['id']}/availability", params={"from": start, "to": end}
                )
                assert r.status_code == 200, r.text

        def cancel() -> None:
            for i in range(n):
                at = (t0 + timedelta(hours=n + 1 + i)).isoformat().replace("+00:00", "Z")  # clear of the book phase
                r = f.book(parent, teacher, starts_at=at, duration=30)
                assert r.status_code == 201, r.text
                cs = r.json()["data"]["stripeSessionId"]
                r = parent["client"].post(f"/api/Sessions/cancel-payment/{cs}")
                assert r.status_code == 200, r.text

        def credit() -> None:
            for i in range(n):
                at = (t0 + timedelta(days=2, hours=i)).isoformat().replace("+00:00", "Z")
                r = f_book_credit(parent, teacher, starts_at=at)
                assert r.status_code == 201, r.text
                assert r.json()["data"]["status"] == 1 and r.json()["data"]["meetingUrl"], r.text

        phases = [("book", book), ("webhook", webhooks), ("confirm", confirm), ("my", my), ("avail", avail),
                  ("teachers", teachers_list), ("availhit", avail_hit), ("cancel", cancel)] + (
                  [("credit", credit)] if with_credits else [])  # fmt: skip
        for name, fn in phases:
            phase(name, fn)

        print(f"\n{'route':60} {'requests':>8} {'stmts':>7} {'per req':>8}")
        for route in sorted(REQUESTS):
            if COUNTS[route] or REQUESTS[route] >= n:
                print(f"{route:60} {REQUESTS[route]:8} {COUNTS[route]:7} {COUNTS[route] / REQUESTS[route]:8.2f}")
        print(f"\n{'phase (its requests and what they spawned)':60} {'stmts':>7} {'per op':>8}")
        for name in cpu:
            print(f"{name:60} {COUNTS[f'phase {name}']:7} {COUNTS[f'phase {name}'] / n:8.2f}")
        print(f"\napp CPU ms per operation (process minus the client thread; n={n}):")
        for name, value in cpu.items():
            print(f"  {name:8} {value * 1000:7.2f}")
        for name, text in profiles.items():
            print(f"\n-- profile: {name} (per operation; own time is wall time in the profiled threads)")
            print(text)
        for pattern in args.show:
            for route, stmts in STATEMENTS.items():
                if pattern in route:
                    print(f"\n-- {route} ({REQUESTS[route]} requests)")
                    for text, k in stmts.most_common():
                        print(f"{k:6}  {text}")
        if args.dump:
            Path(args.dump).write_text(json.dumps(dumped))
        for (route, pattern), frames in TRACED.items():
            print(f"\n-- {pattern!r} in {route}:")
            print("\n".join(f"   {line}" for line in frames))
        c.close()
    finally:
        if server is not None:
            server.stop()
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(10)
        drop(pg_name)


if __name__ == "__main__":
    main()
