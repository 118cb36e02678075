"""Instructions per operation, app only, counted by valgrind's callgrind (issue #27's before/after).

Wall-clock CPU on a shared machine measures the other processes; the count of instructions the
app executes does not depend on load. This script runs three processes:

  the app      `bench_instructions.py serve`, under `valgrind --tool=callgrind`: uvicorn and the
               app in one process, PYTHONHASHSEED=0, plus one extra path (`/__callgrind/dump`,
               handled by a wrapper around the app, not by the app) that calls callgrind's
               CALLGRIND_DUMP_STATS_AT client request (a 3-line C library, compiled with `cc` at
               run time, loaded with ctypes): it writes the instructions counted since the last
               dump to a file of its own, and zeroes the counters
  the sandbox  the Stripe sandbox, its own process, latency 0 ms, not under valgrind
  the client   this process (httpx, the tests' factories), not under valgrind

The client warms every path up, then runs, ROUNDS times: N bookings (`POST /api/Sessions/book`),
N payments (the sandbox's hosted page; its `checkout.session.completed` events delivered to the
app's webhook until every booking is Confirmed), N success-page calls (`POST
/api/Sessions/confirm-payment/{cs}`, after the webhook: `already_fulfilled`), N My Bookings
reads (`GET /api/Sessions/my-bookings`), the mix's other reads (issue #33): N teacher lists
(`GET /api/Teachers`), N reads of one week of a teacher's availability (the cache's hit) and N of
a new week each (a miss), N bookings then N cancel-page calls (`POST
/api/Sessions/cancel-payment/{cs}`, the mix's 5 %: phases `bookc` and `cancel`), and, on a tree
with credits (issue #28), N bookings paid with a credit (`payWith: credit`: confirmed with their link in the one request; a lot granted
first, straight into the database), with a dump after each phase. An `empty` phase (one dump
right after another) measures what a dump itself costs (its HTTP request); it is subtracted from
every phase. PostgreSQL is its own process: not counted.

It imports only what every tree since 41d0ecb has, so the same file measures another checkout:

    PYTHONPATH=/work/wt/before27/src:/work/wt/before27 /work/wt/before27/.venv/bin/python \\
        benchmarks/bench_instructions.py --db postgresql -n 10
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PG_ADMIN = os.environ.get("TUTORBOOK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
WEBHOOK_SECRET = "whsec_test_secret"
DUMP_PATH = "/__callgrind/dump"
START_PATH = "/__callgrind/start"
C_SOURCE = """
#include <valgrind/callgrind.h>
void cg_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
int cg_running(void) { return RUNNING_ON_VALGRIND; }
"""


# -- the app's process (under valgrind) ----------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from tutorbook.app import create_app
    from tutorbook.config import Settings
    from tutorbook.db import Database

    lib = ctypes.CDLL(args.cglib)
    if not lib.cg_running():
        print("serve: not under valgrind; dumps are no-ops", file=sys.stderr)
    base = f"http://127.0.0.1:{args.port}"
    settings = Settings(
        database_url=args.url,
        var_dir=Path(args.var_dir),
        jwt_secret="probe-secret-" + "x" * 32,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_connect_webhook_secret="whsec_test_connect_secret",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        jobs_enabled=False,
        log_json=True,
        log_level="WARNING",
        stripe_max_network_retries=0,
        stripe_timeout_seconds=120.0,  # 10 s by default: the first calls under valgrind can take longer
        public_url=base,
        sandbox_url=args.sb_url,
    ).resolved()
    app = create_app(settings, db=Database(args.url, pool_size=10))

    async def wrapper(scope, receive, send):  # noqa: ANN001, ANN202
        if scope["type"] == "http" and scope["path"] in (DUMP_PATH, START_PATH):
            if scope["path"] == START_PATH:
                lib.cg_start()
            else:
                lib.cg_dump((scope["query_string"].decode() or "unnamed").encode())
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return None
        return await app(scope, receive, send)

    wrapper.state = app.state  # type: ignore[attr-defined]
    uvicorn.run(wrapper, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on")


def sandbox(args: argparse.Namespace) -> None:
    import uvicorn

    from stripe_sandbox.app import create_app
    from stripe_sandbox.config import SandboxConfig

    config = SandboxConfig(
        db_path=args.db_path,
        public_url=f"http://127.0.0.1:{args.port}",
        webhook_url=args.webhook_url,
        webhook_secret=WEBHOOK_SECRET,
        webhook_timeout_s=600.0,  # the app under valgrind is 50-100 times slower
    )
    uvicorn.run(create_app(config), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


# -- the client (this process) --------------------------------------------------------------


def database(kind: str, tmp: Path) -> tuple[str, str | None]:
    import sqlalchemy as sa

    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", None
    name = f"bench_instr_{os.getpid()}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), name


def drop(name: str | None) -> None:
    import sqlalchemy as sa

    if name is None:
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def confirmed(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        n = conn.exec_driver_sql("SELECT count(*) FROM private_sessions WHERE status = 1").scalar()
    engine.dispose()
    return int(n or 0)


def wait_until(predicate, what: str, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def compile_lib(tmp: Path) -> Path:
    src, lib = tmp / "cg.c", tmp / "libcg.so"
    src.write_text(C_SOURCE)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def read_dumps(out_dir: Path) -> list[tuple[str, int]]:
    """(trigger name, instructions) of every dump file, in the order they were written."""
    rows = []
    for path in out_dir.glob("cg.out.*"):
        text = path.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        part = re.search(r"^part: (\d+)", text, re.M)
        if trigger and total:
            rows.append((int(part.group(1)) if part else 0, trigger.group(1).strip(), int(total.group(1))))
    return [(name, ir) for _, name, ir in sorted(rows)]


def grant_credits(url: str, *, parent: dict, teacher: dict, lessons: int) -> bool:
    """Issue #28: a lot of `lessons` 30-minute credits of `teacher` for `parent` (an operator's
    grant), written from this process; False on a tree without credits."""
    import uuid

    from tutorbook.db import Database

    try:
        from tutorbook.credits import ledger
        from tutorbook.credits.models import EntryKind
    except ImportError:
        return False
    now = datetime.now(UTC)
    db = Database(url)
    with db.session_scope() as session:
        ledger.add_lot(
            session, parent_id=uuid.UUID(parent["user"]["id"]), teacher_id=uuid.UUID(teacher["user"]["id"]),
            duration_minutes=30, lessons=lessons, unit_amount=3000, currency="usd",
            expires_at=now + timedelta(days=365), kind=EntryKind.ADJUST, actor="bench", now=now, amount=0,
        )  # fmt: skip
    db.engine.dispose()
    return True


def book_with_credit(parent: dict, teacher: dict, *, starts_at: str):  # noqa: ANN201
    r = parent["client"].post(
        "/api/Sessions/book",
        json={"teacherId": teacher["user"]["id"], "studentId": parent["students"][0], "subject": "Mathematics",
              "startsAt": starts_at, "durationMinutes": 30, "payWith": "credit"},
    )  # fmt: skip
    assert r.status_code == 201 and r.json()["data"]["status"] == 1, r.text
    return r


def main() -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode")
    s = sub.add_parser("serve")
    s.add_argument("--url", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--sb-url", required=True)
    s.add_argument("--var-dir", required=True)
    s.add_argument("--cglib", required=True)
    b = sub.add_parser("sandbox")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--db-path", required=True)
    b.add_argument("--webhook-url", required=True)
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("-n", type=int, default=10, help="operations per phase")
    ap.add_argument("--rounds", type=int, default=2, help="times every phase runs (each its own dump)")
    ap.add_argument("--no-valgrind", action="store_true", help="run the app without valgrind (a dry run)")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--instr-after-warmup", action="store_true",
                    help="callgrind counts nothing until the warm-up is done (--instr-atstart=no, then "
                         "CALLGRIND_START_INSTRUMENTATION): the phases' counts are the same, start-up is faster")
    ap.add_argument("--client-timeout", type=float, default=600, help="seconds any request may take")
    args = ap.parse_args()
    if args.mode == "serve":
        return serve(args)
    if args.mode == "sandbox":
        return sandbox(args)

    import httpx
    from tests import factories as f
    from tests.support.payments import pay
    from tests.support.servers import free_port, http_get, http_post

    import tutorbook
    from tutorbook.migrate import upgrade

    # The factories' clients wait 30 s; the app under callgrind on a busy machine can take longer.
    make_client = f.http_client

    def patient_client(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        return make_client(*a, **(kw | {"timeout": args.client_timeout}))

    f.http_client = patient_client

    tree = Path(tutorbook.__file__).parents[2]
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    print(f"tree: {tree} ({commit})  db: {args.db}  n: {args.n}  rounds: {args.rounds}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_instr_"))
    url, pg_name = database(args.db, tmp)
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, PYTHONHASHSEED="0")
    try:
        upgrade(url)
        lib = compile_lib(tmp)
        port, sb_port = free_port(), free_port()
        base, sb_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sb_port}"
        me = str(Path(__file__).resolve())
        procs.append(subprocess.Popen(
            [sys.executable, me, "sandbox", "--port", str(sb_port), "--db-path", str(tmp / "sandbox.db"),
             "--webhook-url", f"{base}/api/StripeWebhook/webhook"], env=env,
        ))  # fmt: skip
        app_cmd = [sys.executable, me, "serve", "--url", url, "--port", str(port), "--sb-url", sb_url,
                   "--var-dir", str(tmp / "var"), "--cglib", str(lib)]  # fmt: skip
        if not args.no_valgrind:
            app_cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", *app_cmd]
            if args.instr_after_warmup:  # start-up and warm-up run uninstrumented: several times faster
                app_cmd.insert(2, "--instr-atstart=no")
        print("app:", " ".join(app_cmd), flush=True)
        t_start = time.monotonic()
        procs.append(subprocess.Popen(app_cmd, env=env))

        def up(u: str) -> bool:
            try:
                return http_get(u, timeout=5).status_code < 500
            except Exception:  # noqa: BLE001
                return False

        wait_until(lambda: up(f"{sb_url}/_sandbox/config"), "the sandbox", 120)
        http_post(f"{sb_url}/_sandbox/config", json={"latency_ms": 0, "connect_enabled": True})
        wait_until(lambda: up(f"{base}{DUMP_PATH}?startup"), "the app", 1800)
        print(f"app up after {time.monotonic() - t_start:.0f} s", flush=True)

        c = httpx.Client(base_url=base, timeout=600)
        timings: dict[str, float] = {}

        def dump(name: str) -> None:
            r = httpx.get(f"{base}{DUMP_PATH}?{name}", timeout=600)
            assert r.status_code == 200, r.text

        teachers = [f.teacher(c) for _ in range(2)]
        parent = f.parent(c)
        pc = parent["client"]
        pc.timeout = httpx.Timeout(600)
        # Warm every path up (first calls compile statements and fill caches): 3 of each.
        for i in range(3):
            r = f.book(parent, teachers[1], starts_at=f.slot(days=3, hour=1 + i))
            assert r.status_code == 201, r.text
            assert pay(r.json()["data"]["checkoutUrl"]).status_code in (302, 303)
            wait_until(lambda i=i: confirmed(url) >= i + 1, "the warm-up's confirmation", 600)
            assert pc.post(f"/api/Sessions/confirm-payment/{r.json()['data']['stripeSessionId']}").status_code == 200
            assert pc.get("/api/Sessions/my-bookings").status_code == 200
            assert c.get("/api/Teachers").status_code == 200
            assert c.get(f"/api/Teachers/{teachers[0]['user']['id']}/availability").status_code == 200
        for i in range(3):  # the cancel page's path (the mix's 5 %): book, then cancel the unpaid checkout
            r = f.book(parent, teachers[1], starts_at=f.slot(days=3, hour=6 + i))
            assert r.status_code == 201, r.text
            assert pc.post(f"/api/Sessions/cancel-payment/{r.json()['data']['stripeSessionId']}").status_code == 200
        with_credits = grant_credits(url, parent=parent, teacher=teachers[0], lessons=args.n * args.rounds + 10)
        for i in range(3 if with_credits else 0):
            book_with_credit(parent, teachers[0], starts_at=f.slot(days=4, hour=1 + i))
        time.sleep(1)
        if args.instr_after_warmup:
            assert httpx.get(f"{base}{START_PATH}", timeout=args.client_timeout).status_code == 200
        dump("warmup")
        dump("empty")
        t0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=5)
        teacher = teachers[0]
        n = args.n
        done = 3
        order: list[str] = []

        def settle(name: str, started: float) -> None:
            time.sleep(1.0)  # what the requests spawned (follow-ups) ends
            timings[name] = time.monotonic() - started
            dump(name)
            order.append(name)
            print(f"  {name}: {timings[name]:.0f} s", flush=True)

        for rnd in range(1, args.rounds + 1):
            booked = []
            started = time.monotonic()
            for i in range(n):
                at = (t0 + timedelta(days=rnd, hours=i)).isoformat().replace("+00:00", "Z")
                r = f.book(parent, teacher, starts_at=at, duration=30)
                assert r.status_code == 201, r.text
                booked.append(r.json()["data"])
            settle(f"book.{rnd}", started)
            started = time.monotonic()
            for bk in booked:
                assert pay(bk["checkoutUrl"]).status_code in (302, 303)
            done += n
            wait_until(lambda d=done: confirmed(url) >= d, "every booking confirmed", 1800)
            settle(f"webhook.{rnd}", started)
            started = time.monotonic()
            for bk in booked:
                r = pc.post(f"/api/Sessions/confirm-payment/{bk['stripeSessionId']}")
                assert r.status_code == 200, r.text
            settle(f"confirm.{rnd}", started)
            started = time.monotonic()
            for _ in range(n):
                r = pc.get("/api/Sessions/my-bookings")
                assert r.status_code == 200, r.text
            settle(f"my.{rnd}", started)
            # The mix's other two reads, as bench_mixed.py sends them (issue #33): the whole
            # teacher list (no If-None-Match), and a teacher's week of availability, 60-minute
            # sessions: the same week each call (the per-process cache's hit, the mix's usual
            # case), then a week not asked before each call (a miss: the week computed).
            started = time.monotonic()
            for _ in range(n):
                r = c.get("/api/Teachers")
                assert r.status_code == 200, r.text
            settle(f"teachers.{rnd}", started)
            week = (t0 + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            week_end = (t0 + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
            avail = f"/api/Teachers/{teacher['user']['id']}/availability"
            r = c.get(avail, params={"from": week, "to": week_end, "durationMinutes": 60})
            assert r.status_code == 200 and r.json()["data"], r.text  # the week cached, not empty
            started = time.monotonic()
            for _ in range(n):
                r = c.get(avail, params={"from": week, "to": week_end, "durationMinutes": 60})
                assert r.status_code == 200, r.text
            settle(f"avail.{rnd}", started)
            started = time.monotonic()
            for i in range(n):
                at = t0 + timedelta(days=7 * (rnd * n + i + 2))
                r = c.get(avail, params={"from": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "durationMinutes": 60,
                                         "to": (at + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")})
                assert r.status_code == 200, r.text
            settle(f"availmiss.{rnd}", started)
            # The mix's 5 %: a booking whose checkout the parent abandons, cancelled by the
            # cancel page (`POST /api/Sessions/cancel-payment/{cs}`: Stripe's expire, then the
            # booking Cancelled). The bookings are their own phase (`bookc`), the cancels `cancel`.
            started = time.monotonic()
            unpaid = []
            for i in range(n):
                at = (t0 + timedelta(days=10 + rnd, hours=i)).isoformat().replace("+00:00", "Z")
                r = f.book(parent, teacher, starts_at=at, duration=30)
                assert r.status_code == 201, r.text
                unpaid.append(r.json()["data"]["stripeSessionId"])
            settle(f"bookc.{rnd}", started)
            started = time.monotonic()
            for cs in unpaid:
                r = pc.post(f"/api/Sessions/cancel-payment/{cs}")
                assert r.status_code == 200, r.text
            settle(f"cancel.{rnd}", started)
            if with_credits:
                started = time.monotonic()
                for i in range(n):
                    at = (t0 + timedelta(days=20 + rnd, hours=i)).isoformat().replace("+00:00", "Z")
                    book_with_credit(parent, teacher, starts_at=at)
                settle(f"credit.{rnd}", started)
        dump("end")
        c.close()
        app = procs.pop()
        app.send_signal(signal.SIGINT)
        app.wait(600)
        if args.no_valgrind:
            return None
        dumps = dict(read_dumps(tmp))
        empty = dumps["empty"]
        print(f"\ninstructions per operation, app process only (n={n}; the empty dump, {empty:,}, subtracted):")
        results = {}
        for name in order:
            per_op = (dumps[name] - empty) / n
            results[name] = per_op
            print(f"  {name:12} {per_op:14,.0f}")
        print(f"  (warm-up and start-up: {dumps['warmup']:,})")
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"tree": str(tree), "commit": commit, "db": args.db, "n": n, "rounds": args.rounds,
                 "empty": empty, "dumps": dumps, "per_op": results, "seconds": timings}, indent=1,
            ))  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
            p.wait(60)
        drop(pg_name)
    return None


if __name__ == "__main__":
    main()
