"""What every benchmark needs: a fresh PostgreSQL database, the sandbox and the app as their
own processes, seed data loaded with COPY, tokens, CPU accounting, machine facts, and the
writer of docs/PERFORMANCE.md.

Environment:
  BENCH_PG_ADMIN_URL   where to create databases (default postgresql://postgres@127.0.0.1:5432/postgres)
  BENCH_KEEP_LOGS=1    keep the servers' logs (the run directory is printed)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "benchmarks"
DOC = REPO / "docs" / "PERFORMANCE.md"
RESULTS = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
JWT_SECRET = "bench-jwt-secret-" + "x" * 40
WEBHOOK_SECRET = "whsec_bench_" + "0123456789abcdef" * 2
SUBJECT = "Mathematics"

if str(REPO / "src") not in sys.path:  # running from a checkout without `pip install -e`
    sys.path.insert(0, str(REPO / "src"))


# -- command line ------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI-sized run: seconds, not minutes")
    ap.add_argument("--write-docs", action="store_true", help="update this benchmark's section of docs/PERFORMANCE.md")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    ap.add_argument("--db", default=None, help="PostgreSQL database name to (re)create")
    ap.add_argument("--tries", type=int, default=3,
                    help="full runs: measure again (after waiting for an idle machine) while other processes "
                         "competed for the CPU, at most this many times; the least noisy run is kept")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy record the app over each measured window (needs py-spy in the venv: "
                         ".venv/bin/pip install py-spy; profiling only, not a project dependency)")
    return ap


def command_line() -> str:
    """The exact command that is running, relative to the repository root."""
    script = os.path.relpath(sys.argv[0], REPO)
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    return "cd " + str(REPO) + " && " + shlex.join([python, script, *sys.argv[1:]])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- database ------------------------------------------------------------------------------


def sa_url(dbname: str) -> str:
    base = PG_ADMIN.replace("postgresql://", "postgresql+psycopg://", 1)
    return base.rsplit("/", 1)[0] + "/" + dbname


def pg_url(dbname: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname


# The benchmarks that COPY bookings write the booking's one-row layout (before issue #27's
# records), then migrate: 0015 moves the rows into payments, meeting_links and booking_terms, as it
# would on a live database (and is timed doing so).
LOADED_AT = "0014_job_schedule"


def fresh_database(dbname: str, revision: str = "head") -> str:
    """Drop and create `dbname`, run the migrations (up to `revision`); its SQLAlchemy URL."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = sa_url(dbname)
    from tutorbook.migrate import upgrade

    upgrade(url, revision)
    return url


def migrate_loaded(dbname: str) -> float:
    """The rest of the migrations over rows loaded at LOADED_AT; seconds taken."""
    from tutorbook.migrate import upgrade

    t0 = time.perf_counter()
    upgrade(sa_url(dbname))
    with psycopg.connect(pg_url(dbname), autocommit=True) as conn:  # the new tables' statistics
        conn.execute("VACUUM (ANALYZE) payments, meeting_links, booking_terms")
    took = round(time.perf_counter() - t0, 1)
    print(f"  the rows loaded at {LOADED_AT} migrated to head in {took} s", flush=True)
    return took


def database_exists(dbname: str) -> bool:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def pg_version() -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def copy_rows(conn: psycopg.Connection, table: str, columns: list[str], lines) -> int:
    """COPY text-format lines (already tab-separated, \\N for NULL) into `table`."""
    n = 0
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        buf = io.StringIO()
        for line in lines:
            buf.write(line)
            buf.write("\n")
            n += 1
            if n % 20000 == 0:
                cp.write(buf.getvalue())
                buf = io.StringIO()
        cp.write(buf.getvalue())
    return n


def bulk_copy(conn: psycopg.Connection, table: str, columns: list[str], lines) -> dict:
    """COPY into `table` the way PostgreSQL's manual advises for bulk loads ("Populating a
    Database"): in one transaction, drop the table's foreign keys, unique and exclusion
    constraints and plain indexes, COPY, then re-create each from its own definition
    (pg_get_constraintdef / pg_get_indexdef). Re-adding them validates every row, so the data
    obeys exactly the schema it would obey row by row — only the checking is done in bulk.
    CHECK constraints and the primary key stay on throughout. Timings in seconds."""
    t0 = time.perf_counter()
    conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype IN ('f', 'u', 'x') ORDER BY contype DESC", (table,)).fetchall()  # x, u, f
    indexes = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND i.indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)", (table, table)).fetchall()
    for name, _ in constraints:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    n = copy_rows(conn, table, columns, lines)
    t_copy = time.perf_counter() - t0
    for _, definition in indexes:
        conn.execute(definition)
    for name, definition in reversed(constraints):  # f, u, x: foreign keys first (cheapest)
        conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    return {"rows": n, "copy_s": round(t_copy, 1), "constraints_s": round(time.perf_counter() - t0 - t_copy, 1),
            "rebuilt": [c[0] for c in constraints] + [i[0] for i in indexes]}


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00")


@dataclass
class Seed:
    teachers: list[uuid.UUID]
    parents: list[uuid.UUID]
    students: dict[uuid.UUID, list[uuid.UUID]]  # parent -> children


def password_hash() -> str:
    """One real (cheap) Argon2 hash, so seeded users could log in with `bench-password`."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)).hash("bench-password")


def seed_people(dbname: str, *, teachers: int, parents: int, children: int = 1, tag: str = "b") -> Seed:
    """Teachers (profile: Mathematics at 60.00 usd/h, UTC, available 00:00-24:00 every day)
    and parents with children, written with COPY."""
    now = ts(datetime.now(UTC))
    pw = password_hash()
    t_ids = [uuid.uuid4() for _ in range(teachers)]
    p_ids = [uuid.uuid4() for _ in range(parents)]
    kids = {p: [uuid.uuid4() for _ in range(children)] for p in p_ids}
    with psycopg.connect(pg_url(dbname)) as conn:
        copy_rows(conn, "users", ["id", "email", "password_hash", "full_name", "role", "time_zone", "created_at"], (
            *(f"{t}\t{tag}teacher{i}@bench.example.com\t{pw}\tTeacher {i}\tTeacher\tUTC\t{now}" for i, t in enumerate(t_ids)),
            *(f"{p}\t{tag}parent{i}@bench.example.com\t{pw}\tParent {i}\tParent\tUTC\t{now}" for i, p in enumerate(p_ids)),
        ))
        copy_rows(conn, "teacher_profiles", ["user_id", "subjects", "hourly_rate", "currency", "time_zone", "bio"],
                  (f'{t}\t["{SUBJECT}"]\t6000\tusd\tUTC\tBenchmark teacher' for t in t_ids))
        copy_rows(conn, "availability_windows", ["teacher_id", "weekday", "start_minute", "end_minute"],
                  (f"{t}\t{d}\t0\t1440" for t in t_ids for d in range(7)))
        copy_rows(conn, "students", ["id", "parent_id", "full_name", "created_at"],
                  (f"{k}\t{p}\tKid {j} of {i}\t{now}" for i, p in enumerate(p_ids) for j, k in enumerate(kids[p])))
        conn.commit()
    return Seed(t_ids, p_ids, kids)


def token(user_id: uuid.UUID, role: str) -> str:
    """A bearer token as POST /api/Auth/login would issue it."""
    from tutorbook.accounts.security import issue_token
    from tutorbook.config import Settings

    settings = Settings(jwt_secret=JWT_SECRET, jwt_ttl_minutes=24 * 60)
    return issue_token(settings=settings, user_id=user_id, role=role, now=datetime.now(UTC))


class Slots:
    """Distinct free slots: request i goes to teacher i mod T at the (i div T)-th half hour
    from tomorrow 00:00 UTC, so concurrent requests rarely share a teacher and never a slot."""

    def __init__(self, teachers: list[uuid.UUID], minutes: int = 30, offset_minutes: int = 0):
        self.teachers = [str(t) for t in teachers]
        self.minutes = minutes
        self.base = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.base += timedelta(minutes=offset_minutes)
        self.i = 0

    def next(self) -> tuple[str, str]:
        i, n = self.i, len(self.teachers)
        self.i += 1
        start = self.base + timedelta(minutes=self.minutes * (i // n))
        assert start < datetime.now(UTC) + timedelta(days=365), "ran out of slots within a year"
        return self.teachers[i % n], start.strftime("%Y-%m-%dT%H:%M:%SZ")


class Booker:
    """make(i) for loadgen: worker i books as parent i (mod parents) a fresh slot."""

    def __init__(self, seed: Seed, slots: Slots, *, duration: int = 30):
        self.slots, self.duration = slots, duration
        self.parents = [
            ((f"Authorization: Bearer {token(p, 'Parent')}\r\nContent-Type: application/json\r\n").encode(),
             str(seed.students[p][0]))
            for p in seed.parents
        ]

    def __call__(self, i: int):
        headers, student = self.parents[i % len(self.parents)]
        teacher, start = self.slots.next()
        body = (
            '{"teacherId":"%s","studentId":"%s","subject":"%s","startsAt":"%s","durationMinutes":%d}'
            % (teacher, student, SUBJECT, start, self.duration)
        ).encode()
        return "POST", "/api/Sessions/book", headers, body


def seed_credits(dbname: str, seed: Seed, *, lessons: int = 1_000_000, minutes: int = 30) -> None:
    """Issue #28: parent k holds `lessons` credits of teacher k (`minutes` long): one lot and its
    purchase entry each, written with COPY (a grant: no purchase row)."""
    now = datetime.now(UTC)
    expires = ts(now + timedelta(days=365))
    pairs = list(zip(seed.parents, seed.teachers, strict=False))
    lots = [uuid.uuid4() for _ in pairs]
    with psycopg.connect(pg_url(dbname)) as conn:
        copy_rows(conn, "credit_lots", ["id", "parent_id", "teacher_id", "duration_minutes", "lessons", "unit_amount",
                                        "currency", "expires_at", "created_at"],
                  (f"{lot}\t{p}\t{t}\t{minutes}\t{lessons}\t3000\tusd\t{expires}\t{ts(now)}"
                   for lot, (p, t) in zip(lots, pairs, strict=True)))
        copy_rows(conn, "credit_entries", ["parent_id", "teacher_id", "duration_minutes", "lot_id", "kind", "lessons",
                                           "amount", "currency", "actor", "created_at"],
                  (f"{p}\t{t}\t{minutes}\t{lot}\tadjust\t{lessons}\t0\tusd\tbench\t{ts(now)}"
                   for lot, (p, t) in zip(lots, pairs, strict=True)))
        conn.commit()


class CreditBooker:
    """make(i) for loadgen (issue #28): request j books, as parent j mod N, with one of their
    credits of teacher j mod N (seed_credits' pairs), the next free 30 minutes of that teacher
    from `offset_days` ahead (clear of the checkout bookings' slots)."""

    def __init__(self, seed: Seed, *, offset_days: int, duration: int = 30):
        self.pairs = [
            ((f"Authorization: Bearer {token(p, 'Parent')}\r\nContent-Type: application/json\r\n").encode(),
             str(seed.students[p][0]), str(t))
            for p, t in zip(seed.parents, seed.teachers, strict=False)
        ]
        self.duration = duration
        self.base = (datetime.now(UTC) + timedelta(days=offset_days)).replace(hour=0, minute=0, second=0,
                                                                             microsecond=0)
        self.j = 0

    def __call__(self, i: int):
        j, n = self.j, len(self.pairs)
        self.j += 1
        headers, student, teacher = self.pairs[j % n]
        start = (self.base + timedelta(minutes=self.duration * (j // n))).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = (
            '{"teacherId":"%s","studentId":"%s","subject":"%s","startsAt":"%s","durationMinutes":%d,"payWith":"credit"}'
            % (teacher, student, SUBJECT, start, self.duration)
        ).encode()
        return "POST", "/api/Sessions/book", headers, body


# -- processes -----------------------------------------------------------------------------


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}; log:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s; log:\n{log.read_text()[-4000:]}")


@dataclass
class Servers:
    """The sandbox and the app, each its own process; stop() ends exactly those."""

    dbname: str
    workers: int = 1
    sandbox: bool = True
    app: bool = True
    app_target: list = field(default_factory=lambda: ["bench_app:app"])  # or ["--factory", "mod:fn"]
    app_env: dict = field(default_factory=dict)
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tutorbook-bench-")))
    procs: dict = field(default_factory=dict)
    app_port: int = 0
    sandbox_port: int = 0

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "TUTORBOOK_ENV": "development",
            "TUTORBOOK_DATABASE_URL": sa_url(self.dbname),
            "TUTORBOOK_VAR_DIR": str(self.run_dir / "var"),
            "TUTORBOOK_PUBLIC_URL": self.app_url,
            "TUTORBOOK_SANDBOX_URL": self.sandbox_url,
            "TUTORBOOK_JWT_SECRET": JWT_SECRET,
            "TUTORBOOK_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TUTORBOOK_JOBS_ENABLED": "false",
            "TUTORBOOK_LOG_LEVEL": "WARNING",
            "TUTORBOOK_LOG_JSON": "true",
            "TUTORBOOK_ARGON2_TIME_COST": "1",
            "TUTORBOOK_ARGON2_MEMORY_KIB": "1024",
            "TUTORBOOK_ARGON2_PARALLELISM": "1",
        })
        env.update(self.app_env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(BENCH_DIR), env.get("PYTHONPATH")]))
        return env

    def start(self) -> Servers:
        self.app_port, self.sandbox_port = free_port(), free_port()
        env = self.env()
        if self.sandbox:
            log = self.run_dir / "sandbox.log"
            self.procs["sandbox"] = subprocess.Popen(
                [sys.executable, str(BENCH_DIR / "sandbox_proc.py"), "--port", str(self.sandbox_port),
                 "--db", str(self.run_dir / "sandbox.sqlite3"), "--webhook-secret", WEBHOOK_SECRET,
                 "--webhook-url", self.app_url + "/api/StripeWebhook/webhook"],
                env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=self.run_dir,
            )
            _wait_http(self.sandbox_url + "/_sandbox/clock", self.procs["sandbox"], log)
        if not self.app:
            return self
        log = self.run_dir / "app.log"
        self.procs["app"] = subprocess.Popen(
            [str(VENV_BIN / "uvicorn"), *self.app_target, "--host", "127.0.0.1", "--port", str(self.app_port),
             "--workers", str(self.workers), "--no-access-log", "--log-level", "warning"],
            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=self.run_dir,
        )
        _wait_http(self.app_url + "/health", self.procs["app"], log)
        if self.workers > 1:  # every worker must be up, not only the first
            time.sleep(1.0 + 0.5 * self.workers)
        return self

    def sandbox_config(self, **values) -> None:
        httpx.post(self.sandbox_url + "/_sandbox/config", json=values, timeout=10).raise_for_status()

    def pids(self, name: str) -> list[int]:
        """The process and its descendants (uvicorn's workers)."""
        proc = self.procs.get(name)
        return [] if proc is None else [proc.pid, *descendants(proc.pid)]

    def stop(self) -> None:
        for name in ("app", "sandbox"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"server logs kept in {self.run_dir}")
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Servers:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


# -- CPU accounting --------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids: list[int] = []
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids += [int(x) for x in task.read_text().split()]
        out += kids
        frontier += kids
    return out


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _children_cpu(pid: int) -> float:
    """CPU of `pid`'s children that exited and were reaped (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / CLK_TCK


def _postmaster() -> int | None:
    """PostgreSQL's postmaster: the parent of its backends."""
    with contextlib.suppress(Exception), psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return None


EXITED = "exited"  # the postgres group's entry for backends that ended (the postmaster's reaped children)


def _postgres_pids(dbname: str | None) -> list[int]:
    """Backends of `dbname` plus PostgreSQL's own background processes (WAL writer, checkpointer
    ...); other databases' backends (other people's test runs) are not ours."""
    if dbname is None:
        return []
    with contextlib.suppress(Exception), psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE (datname = %s OR backend_type <> 'client backend') "
            "AND pid <> pg_backend_pid()", (dbname,)).fetchall()
        return [r[0] for r in rows]
    return []


def _total_busy() -> tuple[float, float]:
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / CLK_TCK, sum(parts) / CLK_TCK


def wait_for_quiet(max_wait: float = 180.0, threshold_cores: float = 0.25) -> float:
    """Wait (at most max_wait s) until the machine is idle, i.e. other people's processes use
    less than `threshold_cores`; returns the busy cores last seen. Benchmarks on a shared
    2-core box are meaningless while a test suite runs next to them."""
    deadline = time.monotonic() + max_wait
    announced = False
    while True:
        a = _total_busy()
        time.sleep(1.0)
        b = _total_busy()
        cores = (b[0] - a[0]) / ((b[1] - a[1]) / (os.cpu_count() or 1)) if b[1] > a[1] else 0.0
        if cores < threshold_cores or time.monotonic() > deadline:
            if announced or cores >= threshold_cores:
                print(f"machine busy with other work: {cores:.2f} cores"
                      + (" — going ahead anyway (the run will be marked noisy)" if cores >= threshold_cores else ""))
            return cores
        if not announced:
            print(f"waiting for the machine to be quiet (other processes use {cores:.2f} cores) ...", flush=True)
            announced = True


def least_noisy(quick: bool, attempt, tries: int = 3):
    """Run attempt() -> (value, [cpu dicts]); on a full run retry (after waiting for quiet) while
    other processes competed for the CPU, at most `tries` times; the least noisy value wins."""
    best = None
    for i in range(1 if quick else tries):
        value, cpus = attempt()
        other = max((c.get("other_cores", 0.0) for c in cpus), default=0.0)
        if best is None or other < best[1]:
            best = (value, other)
        if other <= NOISY_CORES or i == tries - 1 or quick:
            break
        print(f"\nthe run was noisy (other processes used up to {other:.2f} cores); trying again "
              f"({i + 2}/{tries}) when the machine is quiet", flush=True)
        wait_for_quiet()
    return best[0]


class CpuMeter:
    """CPU seconds used by the app, the sandbox, PostgreSQL (this database's backends and the
    background processes) and this load generator between start() and stop(). `other` is the
    rest of the machine: anything else running meanwhile (e.g. someone's test suite) that
    competes for the same cores and makes the run noisy."""

    def __init__(self, servers: Servers | None, dbname: str | None = None, extra: dict | None = None):
        self.servers = servers
        self.dbname = dbname or (servers.dbname if servers is not None else None)
        self.extra = extra or {}  # name -> callable returning pids (e.g. a job's process)
        self.result: dict = {}
        self.postmaster = _postmaster() if self.dbname is not None else None

    def _snap(self) -> dict:
        groups = {"loadgen": [os.getpid()], "postgres": _postgres_pids(self.dbname)}
        for name, pids in self.extra.items():
            groups[name] = [p for p in pids() if p]
        if self.servers is not None:
            groups["app"] = self.servers.pids("app")
            groups["sandbox"] = self.servers.pids("sandbox")
        snap = {name: {p: _cpu_of(p) for p in pids} for name, pids in groups.items()}
        if self.postmaster is not None:
            # Backends that end within the window (a pool closing connections) take their CPU with
            # them; the postmaster's reaped-children total has it (any database's: a busy server
            # elsewhere shows up here, as it does under "other processes").
            snap["postgres"][EXITED] = _children_cpu(self.postmaster)
        snap["_machine"] = _total_busy()
        snap["_wall"] = time.perf_counter()
        return snap

    def start(self) -> CpuMeter:
        self.a = self._snap()
        return self

    def stop(self) -> dict:
        b = self._snap()
        out = {}
        for name in b:
            if name.startswith("_"):
                continue
            # processes that appeared meanwhile count from zero; a PostgreSQL backend that ended is
            # in the EXITED total with all its CPU, so what it had used before the window is taken off
            before = self.a.get(name, {})
            out[name] = sum(v - before.get(p, 0.0) for p, v in b[name].items())
            if EXITED in b[name]:
                out[name] -= sum(v for p, v in before.items() if p != EXITED and p not in b[name])
        busy = b["_machine"][0] - self.a["_machine"][0]
        total = b["_machine"][1] - self.a["_machine"][1]
        out["other"] = max(0.0, busy - sum(out.values()))
        out["machine_busy_pct"] = 100 * busy / total if total else 0.0
        out["wall_s"] = b["_wall"] - self.a["_wall"]
        out["other_cores"] = out["other"] / out["wall_s"] if out["wall_s"] else 0.0
        self.result = out
        return out

    @property
    def window(self):
        """(on_start, on_end) for loadgen.closed_loop(window=...)."""
        return (self.start, self.stop)


CPU_KEYS = ("app", "sandbox", "postgres", "loadgen")
_NOT_GROUPS = ("other", "machine_busy_pct", "wall_s", "other_cores")
NOISY_CORES = 0.15  # other processes using more than this share of a core make a run "noisy"


def cpu_line(cpu: dict, requests: int) -> str:
    if not requests or not cpu:
        return "cpu: no requests"
    keys = [*CPU_KEYS, *(k for k in cpu if k not in CPU_KEYS and k not in _NOT_GROUPS)]
    parts = [f"{k} {1000 * cpu[k] / requests:.2f}" for k in keys if k in cpu]
    noisy = "  ** NOISY: other processes competed for the CPU **" if cpu["other_cores"] > NOISY_CORES else ""
    return (f"CPU ms per request: {', '.join(parts)}; machine busy {cpu['machine_busy_pct']:.0f}% of "
            f"{os.cpu_count()} cores, other processes {cpu['other_cores']:.2f} cores{noisy}")


def cpu_per_request(cpu: dict, requests: int) -> dict:
    out = {k: round(1000 * cpu[k] / requests, 3) for k in CPU_KEYS if k in cpu and requests}
    out["machine_busy_pct"] = round(cpu.get("machine_busy_pct", 0), 1)
    out["other_cores"] = round(cpu.get("other_cores", 0), 2)
    return out


def cpu_row(label: str, cpu: dict, requests: int) -> list:
    per = [f"{1000 * cpu[k] / requests:.2f}" if requests and k in cpu else "-" for k in CPU_KEYS]
    return [label, *per, f"{cpu.get('machine_busy_pct', 0):.0f}%", f"{cpu.get('other_cores', 0):.2f}"]


CPU_HEADER = ["run", "app", "sandbox", "postgres", "load generator", "machine busy", "other processes (cores)"]


def noisy(*cpus: dict) -> bool:
    return any(c.get("other_cores", 0) > NOISY_CORES for c in cpus)


# -- machine facts ---------------------------------------------------------------------------


def machine() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else "?"
    ram = "?"
    with contextlib.suppress(OSError):
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram = f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else "?"
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    try:
        pg = pg_version()
    except Exception as exc:  # the benchmark will fail on its own; facts stay printable
        pg = f"unavailable ({type(exc).__name__})"
    return {
        "nproc": nproc, "cpu": cpu, "ram": ram, "postgresql": pg,
        "python": platform.python_version(), "kernel": platform.release(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(m: dict) -> str:
    return (f"{m['nproc']} cores ({m['cpu']}), {m['ram']} RAM, PostgreSQL {m['postgresql']}, "
            f"Python {m['python']}, {m['date']}")


# -- goals and docs --------------------------------------------------------------------------


@dataclass
class Goal:
    """One row of the summary table. `ratio` >= 1 means the goal is met."""

    key: str
    figure: str
    goal: str
    ratio: float

    @property
    def passed(self) -> bool:
        return self.ratio >= 1.0

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'MISS'}  {self.figure}  (goal {self.goal}; ratio {self.ratio:.2f})"


ORDER = ["stripe_latency", "booking_cost", "webhooks", "my_bookings", "expire", "admin_bookings", "mixed",
         "calendar_availability", "mail_latency"]
# Sections with no goal of their own: their block is written, with no row in the summary.
UNSUMMARISED = ["scale_out", "cluster", "tracing"]
TITLES = {
    "stripe_latency": "1. Stripe latency does not cost throughput",
    "booking_cost": "2. Booking server cost vs a bare insert",
    "webhooks": "3. Webhook events per second",
    "my_bookings": "4. My Bookings p99 (10,000 of 1,000,000 rows)",
    "expire": "5. Expiring 100,000 stale Pending bookings",
    "admin_bookings": "6. The console's booking search (keyset pages of 1,000,000 rows)",
    "mixed": "9. A crowd: the mixed load at 10, 50, 200 and 1,000 parents (issue #33)",
    "calendar_availability": "10. Availability with 3 calendars of 500 events per teacher (issue #30)",
    "mail_latency": "12. Payment to confirmation email, with and without LISTEN/NOTIFY (issue #31)",
}


def report(key: str, goals: list[Goal], section: str, *, quick: bool, write_docs: bool,
           extra: dict | None = None, profiled: bool = False) -> None:
    """Print the goals; with --write-docs store the result and rewrite this section and the
    summary table of docs/PERFORMANCE.md. Never exits non-zero for a missed goal.

    A profiled run (--profile: py-spy attached, itself using CPU on the same cores) goes to its
    own block `<key>:profile` and never into the summary table."""
    m = machine()
    print()
    for g in goals:
        print(g.line())
    print(f"machine: {machine_line(m)}")
    result = {
        "key": key, "quick": quick, "profiled": profiled, "command": command_line(), "machine": m,
        "goals": [{"key": g.key, "figure": g.figure, "goal": g.goal, "ratio": round(g.ratio, 3),
                   "passed": g.passed} for g in goals],
        "section": section, "extra": extra or {},
    }
    if not write_docs:
        print("\n(run with --write-docs to put this in docs/PERFORMANCE.md; markdown follows)\n")
        print(section)
        return
    RESULTS.mkdir(exist_ok=True)
    name = f"{key}.profile" if profiled else key
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    write_doc()
    print(f"\nwrote {os.path.relpath(DOC, REPO)} and {os.path.relpath(RESULTS / (name + '.json'), REPO)}")


def _results(suffix: str = "", keys: list[str] = ORDER) -> dict[str, dict]:
    out = {}
    for key in keys:
        path = RESULTS / f"{key}{suffix}.json"
        if path.exists():
            out[key] = json.loads(path.read_text())
    return out


def summary_table(results: dict[str, dict]) -> str:
    rows = ["| # | figure | goal | ratio | result | run |", "|---|---|---|---:|---|---|"]
    for key in ORDER:
        n = TITLES[key].split(".", 1)[0]  # the section's number
        r = results.get(key)
        if r is None:
            rows.append(f"| {n} | not measured yet | see section {n} | | TODO | |")
            continue
        for g in r["goals"]:
            mode = (" (quick)" if r["quick"] else "") + (" noisy" if "Noisy run" in r["section"] else "")
            rows.append(f"| {n} | {g['figure']} | {g['goal']} | {g['ratio']:.2f} | "
                        f"{'pass' if g['passed'] else '**miss**'} | {r['machine']['date']}{mode} |")
    return "\n".join(rows)


def _replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- BEGIN generated:{name} -->", f"<!-- END generated:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def _body(r: dict) -> str:
    mode = "**quick run (CI-sized) — not the goal's scale**\n\n" if r["quick"] else ""
    if r.get("profiled"):
        mode += ("**Profiled run** (py-spy attached, itself using CPU on the same cores; its figures are "
                 "not the ones in the summary table)\n\n")
    return f"{mode}Command: `{r['command']}`\n\nMachine: {machine_line(r['machine'])}\n\n" + r["section"].strip()


def write_doc() -> None:
    """Regenerate the summary table, machine lines and each measured section in place;
    the hand-written text around the generated blocks is kept."""
    results, profiles = _results(), _results(".profile")
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    text = _replace_block(text, "summary", summary_table(results))
    machines = sorted({machine_line(r["machine"]).rsplit(", ", 1)[0] for r in results.values()})
    text = _replace_block(text, "machine", "\n".join(f"- {m}" for m in machines) or "- (no runs yet)")
    for key, r in results.items():
        text = _replace_block(text, key, _body(r))
    for key, r in profiles.items():
        text = _replace_block(text, f"{key}:profile", _body(r))
    for key, r in _results(keys=UNSUMMARISED).items():
        text = _replace_block(text, key, _body(r))
    DOC.write_text(text)


def md_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def load_row(r) -> list:
    return [r.name, r.concurrency, f"{r.rps:,.1f}", f"{r.pct(50):.1f}", f"{r.pct(90):.1f}", f"{r.pct(99):.1f}",
            f"{r.latencies_ms[-1]:.1f}" if r.latencies_ms else "-", r.ok, r.errors]


LOAD_HEADER = ["run", "concurrency", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "ok", "errors"]


# -- profiling (optional: py-spy in the venv; a profiling tool, not a project dependency) -----


class Profiler:
    """`py-spy record --gil` on the app's processes over the measured window; samples only the
    thread holding the GIL, i.e. where the app's Python CPU time goes."""

    def __init__(self, servers: Servers, name: str, duration: float, rate: int = 250):
        self.servers, self.name, self.duration, self.rate = servers, name, duration, rate
        self.procs: list[subprocess.Popen] = []
        self.outputs: list[Path] = []

    @staticmethod
    def available() -> bool:
        return (VENV_BIN / "py-spy").exists() or shutil.which("py-spy") is not None

    def start(self) -> None:
        exe = str(VENV_BIN / "py-spy") if (VENV_BIN / "py-spy").exists() else shutil.which("py-spy")
        PROFILES.mkdir(exist_ok=True)
        pids = self.servers.pids("app")
        if len(pids) > 1:  # uvicorn --workers N: profile the workers, not the supervisor
            pids = pids[1:]
        for pid in pids:
            out = PROFILES / f"{self.name}-{pid}.txt"
            self.outputs.append(out)
            self.procs.append(subprocess.Popen(
                [exe, "record", "--gil", "-r", str(self.rate), "-d", str(int(self.duration)), "-f", "raw",
                 "-o", str(out), "-p", str(pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for p in self.procs:
            try:
                p.wait(timeout=self.duration + 30)
            except subprocess.TimeoutExpired:
                p.kill()

    def summary(self, requests: int, categories: list[tuple[str, str]], top: int = 12) -> str:
        return profile_summary(self.outputs, rate=self.rate, duration=self.duration, requests=requests,
                               categories=categories, top=top)


def profile_summary(outputs: list[Path], *, rate: int, duration: float, requests: int,
                    categories: list[tuple[str, str]], top: int = 12, what: str = "GIL-holding Python") -> str:
    """Milliseconds per request (or item) by category (a frame substring) and the top self frames."""
    import collections

    self_c, cat, total = collections.Counter(), collections.Counter(), 0
    for out in outputs:
        if not out.exists():
            continue
        for line in out.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            n = int(n)
            total += n
            self_c[stack.rsplit(";", 1)[-1]] += n
            for label, pattern in categories:
                if pattern in stack:
                    cat[label] += n
    if not total or not requests:
        return "(no profile samples)"
    ms = 1000 / rate
    lines = [f"py-spy, {total} samples at {rate} Hz over {duration:g} s, {requests} requests: "
             f"{total * ms / requests:.2f} ms of {what} per request "
             f"({100 * total * ms / 1000 / duration / max(1, len(outputs)):.0f}% of the window).",
             "", "| where (inclusive) | ms / request | share |", "|---|---:|---:|"]
    lines += [f"| {label} | {cat[label] * ms / requests:.2f} | {100 * cat[label] / total:.0f}% |"
              for label, _ in categories]
    lines += ["", "| top self frames | share |", "|---|---:|"]
    lines += [f"| `{f}` | {100 * n / total:.1f}% |" for f, n in self_c.most_common(top)]
    return "\n".join(lines)


PROFILES = BENCH_DIR / "profiles"


def windows(*objs):
    """One (on_start, on_end) pair calling start()/stop() of each object in order."""
    objs = [o for o in objs if o is not None]
    return (lambda: [o.start() for o in objs], lambda: [o.stop() for o in objs])


BOOKING_CATEGORIES = [
    ("whole request in the event loop (uvicorn + middleware + endpoint)", "Server.run"),
    ("Stripe SDK call (create_checkout)", "StripeGateway.create_checkout"),
    ("... of which the HTTP client (the SDK's aiohttp client)", "ClientSession._request"),
    ("use cases on the async engine (AsyncSession.run_sync)", "AsyncSession.run_sync"),
    ("... auth: the user", "_user_for"),
    ("... reserve (validate, lock teacher, overlap check, insert + history, names)", "reserve (tutorbook"),
    ("... attach_checkout (one UPDATE ... RETURNING)", "attach_checkout"),
    ("... asyncpg: bind, execute, read", "PreparedStatement.__do_execute"),
    ("session open / BEGIN / COMMIT / close", "Database.async_scope"),
    ("the answer (SessionOut, JSON)", "serialize_response"),
    ("DB worker threads (the thread path: SQLite, or TUTORBOOK_DB_ASYNC=false)", "WorkerThread.run"),
]


# -- the app's own SQL, captured and explained ------------------------------------------------


def capture_sql(url: str, fn, *, commit: bool = False) -> tuple[object, list[tuple[str, object]]]:
    """Run fn(session) in one transaction of a fresh `tutorbook.db.Database` on `url` and return
    (its result, the (statement, parameters) it sent) — exactly the SQL the app would send.
    Rolled back unless commit=True."""
    from sqlalchemy import event

    from tutorbook.db import Database

    db = Database(url, pool_size=1)
    sent: list[tuple[str, object]] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    try:
        with db.sessions() as session:
            with session.begin() as tx:
                sent.clear()  # the pool's pre-ping is not the app's statement
                result = fn(session)
                statements = list(sent)
                if not commit:
                    tx.rollback()
    finally:
        db.dispose()
    return result, statements


def explain(dbname: str, statement: str, parameters, *, analyze: bool = True) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured statement, in a transaction rolled back after."""
    opts = "ANALYZE, BUFFERS, VERBOSE false, SETTINGS false" if analyze else "COSTS true"
    with psycopg.connect(pg_url(dbname)) as conn:
        rows = conn.execute(f"EXPLAIN ({opts}) {statement}", parameters).fetchall()
        conn.rollback()
    return "\n".join(r[0] for r in rows)


def inline(statement: str, parameters) -> str:
    """The statement with its parameters written in, for the docs (values quoted naively)."""
    if not isinstance(parameters, dict):
        return statement
    out = statement
    for key in sorted(parameters, key=len, reverse=True):
        value = parameters[key]
        text = "NULL" if value is None else (str(value) if isinstance(value, int | float) else f"'{value}'")
        out = out.replace(f"%({key})s", text)
    return out
