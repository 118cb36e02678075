"""The cluster on several hosts, with fault drills (issue 31 item 4). PostgreSQL only, as root (it
skips otherwise): network namespaces joined by a bridge are the hosts.

- db host: its own PostgreSQL 15 (initdb into a temp dir, never the machine's shared one) and
  Debian's PgBouncer beside it running deploy/pgbouncer.ini (transaction mode);
- app hosts 1 and 2: `tutorbook serve --no-jobs` with deploy/compose.yaml's settings (through
  PgBouncer, TUTORBOOK_DB_PGBOUNCER=true, the direct URL for LISTEN and migrations, a 5 s drain);
- worker host: `tutorbook worker --only mail` and `tutorbook worker --only <the other jobs>`;
- this process, on the bridge's own address: Debian's HAProxy running deploy/haproxy.cfg, the
  Stripe sandbox (its webhooks go to the balancer), an SMTP sink (aiosmtpd) and the load.

The seed flow runs through the balancer, then four drills, each followed by the same check of
nothing lost and nothing done twice (`_nothing_lost_or_done_twice`): kill -9 of an app host in the
middle of payments; a rolling restart of both app hosts under booking load (0 failed requests); a
30-second partition between the worker host and the database host; a restart of PostgreSQL. Each
prints its figures (docs/RELIABILITY.md section 13). Run it: `.venv/bin/pytest tests/cluster/test_hosts.py -s`.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import conftest
from tests.cluster.support import (
    CLIENTS,
    DRILLS,
    HAPROXY,
    OTHER_JOBS,
    PGBOUNCER,
    SERIAL,
    HAProxy,
    Load,
    PgBouncer,
    Tutorbook,
    counting,
    deploy_env,
    in_netns,
    ready,
    rolling_restart,
    upgrade,
)
from tests.jobs.helpers import paid_at_stripe
from tests.notifications.conftest import SmtpServer
from tests.support.servers import http_client, http_get, wait_for
from tutorbook.jobs import JOBS
from tutorbook.jobs.claims import UNCLAIMED

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "tutorbook"
PARTITION_SECONDS = 30  # issue 31: "a 30-second network partition"
CONFIRMED = 1
# Short intervals, so that each sweep runs many times during the drills (each once per interval).
INTERVALS = {"expire": 2, "meeting-links": 2, "complete": 3, "reminders": 3, "reconcile": 10, "calendar-sync": 5}
SANDBOX_AUTH = {"Authorization": "Bearer sk_test_sandbox"}


def _netns_works() -> str | None:
    """Why this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return "network namespaces as hosts need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` does not work here"
    return None


pytestmark = [
    DRILLS,
    SERIAL,
    pytest.mark.skipif("postgresql" not in conftest.DATABASES, reason="a cluster runs on PostgreSQL"),
    pytest.mark.skipif(_netns_works() is not None, reason=f"{_netns_works()}: the multi-host test skips"),
]


def sh(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout


class Network:
    """Hosts as network namespaces, each joined to one bridge by a veth pair. Names and the /24
    are this run's own; `down()` removes all of it (and kills what still runs inside)."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:5]
        self.bridge = f"tbh{self.run}"  # interface names: at most 15 characters
        self.prefix = self._free_prefix()
        self.gateway = f"{self.prefix}.1"  # the bridge: this process, HAProxy, sandbox, SMTP
        self.hosts: dict[str, tuple[str, str]] = {}  # name -> (netns, address)

    @staticmethod
    def _free_prefix() -> str:
        used = sh("ip", "-4", "route", "show", "table", "all") + sh("ip", "-4", "addr")
        for _ in range(100):
            prefix = f"10.{random.randint(64, 127)}.{random.randint(0, 255)}"
            if f"{prefix}." not in used:
                return prefix
        raise AssertionError("no free 10.x.y.0/24 for the test's bridge")

    def up(self) -> Network:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        return self

    def add(self, name: str) -> str:
        """A host: its namespace, a veth pair to the bridge, its address (returned)."""
        index = len(self.hosts) + 2
        netns, address, veth = f"tbh-{self.run}-{name}", f"{self.prefix}.{index}", f"{self.bridge}h{index}"
        self.hosts[name] = (netns, address)
        sh("ip", "netns", "add", netns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        return address

    def netns(self, name: str) -> str:
        return self.hosts[name][0]

    def address(self, name: str) -> str:
        return self.hosts[name][1]

    def _routes(self, verb: str, a: str, b: str) -> None:
        """Both ways, so that neither side's packets reach the other (no RST: a silent network)."""
        sh("ip", "-n", self.netns(a), "route", verb, "blackhole", f"{self.address(b)}/32")
        sh("ip", "-n", self.netns(b), "route", verb, "blackhole", f"{self.address(a)}/32")

    def partition(self, a: str, b: str) -> None:
        self._routes("add", a, b)

    def heal(self, a: str, b: str) -> None:
        self._routes("del", a, b)

    def pids(self, name: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.netns(name)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill_host(self, name: str) -> int:
        """kill -9 of every process on host `name`, as when the machine dies; how many."""
        pids = self.pids(name)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def down(self) -> None:
        for name, (netns, _address) in self.hosts.items():
            self.kill_host(name)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class Postgres:
    """The db host's own PostgreSQL 15: initdb (user postgres) into a temp dir, listening on the
    host's address and its loopback (PgBouncer beside it)."""

    def __init__(self, *, netns: str, address: str) -> None:
        self.netns, self.address = netns, address
        self.dir = Path(tempfile.mkdtemp(prefix="pg-hosts-"))
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")

    def _as_postgres(self, *args: str, netns: bool = False) -> None:
        command = [*in_netns(self.netns if netns else None), "runuser", "-u", "postgres", "--", *args]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, f"{args[0]}: {done.stdout}{done.stderr}{self.log()}"

    def init(self) -> Postgres:
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")
        return self

    def start(self) -> Postgres:
        options = (
            f"-c listen_addresses={self.address},127.0.0.1 -c port=5432 -c unix_socket_directories={self.dir} "
            "-c max_connections=100 -c fsync=off -c full_page_writes=off"
        )
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w"]
        self._as_postgres(*pg_ctl, "-t", "30", "-o", options, "start", netns=True)
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://postgres@{self.address}:5432/{database}"

    def log(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Cluster:
    net: Network
    pg: Postgres
    bouncer: PgBouncer
    balancer: HAProxy
    sandbox: object
    smtp: SmtpServer
    webs: list[Tutorbook]
    workers: list[Tutorbook]
    engine: sa.Engine
    figures: list[str] = field(default_factory=list)

    def web_url(self, index: int) -> str:
        return f"http://{self.net.address(f'app{index}')}:8000"

    def start_web(self, index: int) -> None:
        self.webs[index - 1].start()
        wait_for(
            lambda: ready(self.web_url(index)), timeout=60, message=f"app{index} ready: {self.webs[index - 1].log()}"
        )

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in list(self.smtp.inbox.messages)]

    def report(self, line: str) -> None:
        self.figures.append(line)
        print("\n" + line)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    for program, script in ((HAPROXY, "ensure-haproxy"), (PGBOUNCER, "ensure-pgbouncer")):
        if not Path(program).exists():
            pytest.fail(f"{program} is not installed: scripts/{script}")
    if not (PG_BIN / "postgres").exists():
        pytest.fail(f"PostgreSQL 15's server is not in {PG_BIN}: apt-get install -y postgresql-15")
    from stripe_sandbox.config import SandboxConfig
    from stripe_sandbox.server import start_in_thread

    logs = tmp_path_factory.mktemp("hosts")
    net = Network()
    started: list = []
    try:
        net.up()
        for host in ("db", "app1", "app2", "worker"):
            net.add(host)
        pg = Postgres(netns=net.netns("db"), address=net.address("db")).init().start()
        started.append(pg)
        admin = sa.create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
        admin.dispose()
        bouncer = PgBouncer(
            database=DATABASE,
            listen=net.address("db"),
            port=6432,
            server=f"host=127.0.0.1 port=5432 dbname={DATABASE}",
            netns=net.netns("db"),
        ).start()
        started.append(bouncer)
        balancer = HAProxy(replicas=[f"{net.address(f'app{i}')}:8000" for i in (1, 2)], bind=net.gateway)
        started.append(balancer)
        smtp = SmtpServer(host=net.gateway).start()
        started.append(smtp)
        sandbox = start_in_thread(
            SandboxConfig(
                db_path=str(logs / "sandbox.db"),
                webhook_secret="whsec_test_secret",
                connect_webhook_secret="whsec_test_connect_secret",
                webhook_url=balancer.base_url + "/api/StripeWebhook/webhook",
                connect_webhook_url=balancer.base_url + "/api/StripeWebhook/connect",
                retry_schedule_s=(0.2, 0.5, 1, 2, 4),
                expiry_check_interval_s=0.2,
            ),
            host=net.gateway,
        )
        started.append(sandbox)
        env = deploy_env(
            direct=pg.url(),
            bouncer=bouncer,
            sandbox_url=sandbox.base_url,
            public_url=balancer.base_url,
            proxy=net.gateway,
            smtp_url=smtp.url,
            mail_from="Tutorbook <mail@tutorbook.test>",
            **{JOBS[name].interval_setting: every for name, every in INTERVALS.items()},
        )
        upgrade(env)
        webs = [
            Tutorbook(
                ["serve", "--no-jobs", "--host", "0.0.0.0", "--port", "8000"],
                env=env,
                log=logs / f"app{i}.log",
                netns=net.netns(f"app{i}"),
            )
            for i in (1, 2)
        ]
        workers = [
            Tutorbook(
                ["worker", "--only", "mail"],
                env={**env, "PYTHONFAULTHANDLER": "1"},  # SIGABRT: every thread's stack in its log
                log=logs / "worker-mail.log",
                netns=net.netns("worker"),
            ),
            Tutorbook(
                ["worker", "--only", OTHER_JOBS], env=env, log=logs / "worker-sweeps.log", netns=net.netns("worker")
            ),
        ]
        started.extend([*webs, *workers])
        engine = sa.create_engine(pg.url(), pool_pre_ping=True)
        started.append(engine)
        c = Cluster(net, pg, bouncer, balancer, sandbox, smtp, webs, workers, engine)
        for process in [*webs, *workers]:
            process.start()
        for i in (1, 2):
            wait_for(lambda i=i: ready(c.web_url(i)), timeout=90, message=f"app{i} ready: {webs[i - 1].log()}")
        balancer.start()
        wait_for(
            lambda: all(balancer.server(n)["status"] == "UP" for n in ("web1", "web2")),
            timeout=15,
            message="both app hosts UP in HAProxy",
        )
        yield c
        print("\n" + "\n".join(c.figures))
    finally:
        for thing in reversed(started):
            try:
                if isinstance(thing, Tutorbook):
                    thing.kill()
                elif isinstance(thing, Postgres):
                    thing.remove()
                elif isinstance(thing, sa.Engine):
                    thing.dispose()
                else:
                    thing.stop()
            except Exception as exc:  # teardown goes on: the namespaces and the bridge must go
                print(f"teardown of {thing!r}: {exc}")
        net.down()


# --- the checks -------------------------------------------------------------------------------


def _sandbox_list(sandbox, path: str, **params) -> list[dict]:
    """Every object of a sandbox list endpoint, page by page."""
    items: list[dict] = []
    while True:
        page = http_get(
            f"{sandbox.base_url}{path}", params={"limit": 100, **params}, headers=SANDBOX_AUTH, timeout=30
        ).json()
        items.extend(page["data"])
        if not page.get("has_more"):
            return items
        params["starting_after"] = page["data"][-1]["id"]


def _money_problems(c: Cluster) -> list[str]:
    """Asked of the sandbox and the bookings: a payment without its Confirmed booking (or a
    refund), a Confirmed booking without its payment."""
    paid = [
        s for s in _sandbox_list(c.sandbox, "/v1/checkout/sessions", status="complete") if s["payment_status"] == "paid"
    ]
    refunded = {r["payment_intent"] for r in _sandbox_list(c.sandbox, "/v1/refunds") if r["status"] == "succeeded"}
    with c.engine.connect() as conn:
        status = {str(i): s for i, s in conn.execute(sa.text("SELECT id, status FROM private_sessions"))}
    problems = []
    paid_bookings = set()
    for s in paid:
        booking = s.get("client_reference_id")
        paid_bookings.add(booking)
        if status.get(booking) != CONFIRMED and s["payment_intent"] not in refunded:
            problems.append(f"paid {s['id']} for booking {booking} ({status.get(booking)}), not refunded")
    for booking, st in status.items():
        if st == CONFIRMED and booking not in paid_bookings:
            problems.append(f"booking {booking} Confirmed without a payment")
    return problems


def _nothing_lost_or_done_twice(c: Cluster, load: Load | None = None, *, settle: float = 60) -> float:
    """The checks after every drill; the seconds it took for money and mail to settle."""
    started = time.monotonic()
    problems: list[str] = []

    def settled() -> bool:
        problems[:] = _money_problems(c)
        return not problems

    try:
        wait_for(settled, timeout=settle, interval=0.5, message="payments and bookings to agree")
    except AssertionError:
        raise AssertionError(f"{len(problems)} money problems: {problems[:5]}") from None
    if load is not None:  # every booking the load saw confirmed is Confirmed still
        with c.engine.connect() as conn:
            statuses = (
                conn.execute(
                    sa.text("SELECT status FROM private_sessions WHERE id = ANY(CAST(:ids AS uuid[]))"),
                    {"ids": load.booking_ids},
                )
                .scalars()
                .all()
            )
        assert sorted(statuses) == [CONFIRMED] * len(load.booking_ids)

    waiting: list = []

    def outbox_empty() -> bool:
        with c.engine.connect() as conn:
            waiting[:] = conn.execute(
                sa.text(  # due, being sent, or tried and waiting to be tried again (reminders wait for their hour)
                    "SELECT kind, status, attempts, last_error, next_attempt_at, claimed_until, now() "
                    "FROM notifications WHERE status = 'sending' "
                    "OR (status = 'pending' AND (next_attempt_at <= now() OR attempts > 0))"
                )
            ).all()
        return not waiting

    try:
        wait_for(outbox_empty, timeout=settle, interval=0.5, message="every email to leave the outbox")
    except AssertionError:
        raise AssertionError(f"{len(waiting)} emails still in the outbox: {waiting[:3]}") from None
    with c.engine.connect() as conn:
        sent = conn.execute(sa.text("SELECT id FROM notifications WHERE status = 'sent'")).scalars().all()
        failed = conn.execute(sa.text("SELECT count(*) FROM notifications WHERE status = 'failed'")).scalar()
        runs = conn.execute(sa.text("SELECT job, started_at FROM job_runs ORDER BY job, started_at")).all()
    assert failed == 0
    ids = c.message_ids()
    twice = {m for m in ids if ids.count(m) > 1}
    assert not twice, f"emails sent twice: {sorted(twice)[:5]}"
    delivered = {m.strip("<>").split("@")[0] for m in ids}
    missing = [n for n in sent if f"notification-{n}" not in delivered]
    assert not missing, f"{len(missing)} emails marked sent never reached the SMTP server"
    last: dict[str, datetime] = {}
    for job, at in runs:  # each sweep at most once per interval across the cluster (job_schedule)
        if job in UNCLAIMED:
            continue
        every = INTERVALS.get(job)
        if job in last and every is not None:
            gap = (at - last[job]).total_seconds()
            assert gap >= every * 0.5, f"{job} ran twice in one {every} s interval ({gap:.2f} s apart)"
        last[job] = at
    return time.monotonic() - started


def _assert_up(c: Cluster) -> None:
    wait_for(
        lambda: all(c.balancer.server(n)["status"] == "UP" for n in ("web1", "web2")),
        timeout=30,
        message="both app hosts UP in HAProxy",
    )


def _loaded(c: Cluster, monkeypatch, *, clients: int = CLIENTS) -> Load:
    """`clients` booking clients through the balancer, once each has confirmed a booking."""
    load = Load(c.balancer.base_url, clients=clients)
    counting(load, monkeypatch)
    load.start()
    wait_for(lambda: len(load.booking_ids) >= clients, timeout=60, message="the load under way")
    return load


def _summary(load: Load) -> str:
    return f"{load.requests} requests, {len(load.failures)} failed, {len(load.booking_ids)} bookings confirmed"


# --- the flows and drills (in this order: they share one cluster) ------------------------------


def test_the_seed_flow_runs_through_the_balancer(cluster):
    """Register, book, pay on the sandbox's page; the webhook (through HAProxy) confirms it; My
    Bookings shows it Confirmed; the confirmation reaches the SMTP sink from the worker host."""
    c = cluster
    with http_client(base_url=c.balancer.base_url, timeout=60) as client:
        x = paid_at_stripe(client)
        parent = x["p"]

        def status() -> int | None:
            items = parent["client"].get("/api/Sessions/my-bookings").json()["data"]["items"]
            return items[0]["status"] if items else None

        wait_for(lambda: status() == CONFIRMED, timeout=30, message="the webhook to confirm the booking")
    wait_for(lambda: c.smtp.inbox.to(parent["email"]), timeout=30, message="the parent's email at the sink")
    assert "login attempt" in (c.bouncer.dir / "pgbouncer.log").read_text()  # through PgBouncer
    _nothing_lost_or_done_twice(c)


def test_drill_1_kill_9_of_an_app_host_in_the_middle_of_payments(cluster, monkeypatch):
    c = cluster
    load = _loaded(c, monkeypatch)
    try:
        before = len(load.booking_ids)
        killed_at = time.monotonic()
        killed = c.net.kill_host("app1")
        wait_for(lambda: c.balancer.server("web1")["status"].startswith("DOWN"), timeout=10, message="web1 DOWN")
        down_at = time.monotonic()
        time.sleep(3)  # app2 alone
        c.start_web(1)
        _assert_up(c)
        back_at = time.monotonic()
        time.sleep(2)
    finally:
        load.stop()
    took = _nothing_lost_or_done_twice(c, load)
    c.report(
        f"drill 1, kill -9 of app host 1 ({killed} processes) under {CLIENTS} paying clients: {_summary(load)} "
        f"({before} before the kill); HAProxy had it DOWN after {down_at - killed_at:.1f} s; back UP "
        f"{back_at - killed_at:.1f} s after the kill; payments and mail settled {took:.1f} s after the load; "
        f"failures: {load.failures[:3]}"
    )
    # Only the requests in flight on the dead host fail (one per client at most), right then.
    assert len(load.failures) <= CLIENTS, load.failures
    assert all(killed_at <= at <= down_at + 1 for at in load.failed_at), (killed_at, down_at, load.failed_at)
    assert len(load.booking_ids) > before


def test_drill_2_rolling_restart_of_both_app_hosts_loses_no_request(cluster, monkeypatch):
    c = cluster
    load = _loaded(c, monkeypatch)
    try:
        took = []
        for i in (1, 2):
            took.append(rolling_restart(c.balancer, c.webs[i - 1], name=f"web{i}", url=c.web_url(i), drain="self"))
            time.sleep(2)
    finally:
        load.stop()
    _nothing_lost_or_done_twice(c, load)
    c.report(
        f"drill 2, rolling restart of both app hosts (SIGTERM, self-drain, exit 0, start, UP): {_summary(load)}; "
        f"app1 {took[0]:.1f} s, app2 {took[1]:.1f} s"
    )
    assert load.failures == [], load.failures[:5]
    assert len(load.booking_ids) >= 2 * CLIENTS


def _dump_stacks(process: Tutorbook) -> None:
    """A stuck worker's threads into its log (PYTHONFAULTHANDLER), for the failure's message."""
    if process.proc is not None and process.proc.poll() is None:
        process.proc.send_signal(signal.SIGABRT)
        process.proc.wait(10)


def _job_ran_since(c: Cluster, since: datetime) -> bool:
    with c.engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT count(*) FROM job_runs WHERE job = 'expire' AND started_at > :t"), {"t": since}
            ).scalar()
        )


def _db_now(c: Cluster) -> datetime:
    with c.engine.connect() as conn:
        return conn.execute(sa.text("SELECT now()")).scalar_one()


def test_drill_3_a_30_second_partition_between_the_worker_host_and_the_database(cluster, monkeypatch):
    """One booking client: the mail written during the partition (two emails a booking) is sent
    after it, and the figure to watch is when the first goes out."""
    c = cluster
    load = _loaded(c, monkeypatch, clients=1)
    try:
        cut = _db_now(c)
        c.net.partition("worker", "db")
        cut_at = time.monotonic()
        try:
            time.sleep(PARTITION_SECONDS)
        finally:
            c.net.heal("worker", "db")
        healed_at = time.monotonic()
        healed = _db_now(c)
        at_heal = set(c.message_ids())
        with c.engine.connect() as conn:  # the mail written while the worker could not see the database
            during = (
                conn.execute(
                    sa.text(  # due by then: a reminder waits for its hour
                        "SELECT id FROM notifications WHERE created_at > :a AND created_at <= :b "
                        "AND next_attempt_at <= :b"
                    ),
                    {"a": cut, "b": healed},
                )
                .scalars()
                .all()
            )
        keys = {f"<notification-{n}@" for n in during}

        first_seen: list[float] = []  # when the sink had the first of them

        def all_out() -> bool:
            ids = c.message_ids()
            out = [k for k in keys if any(m.startswith(k) for m in ids)]
            if out and not first_seen:
                first_seen.append(time.monotonic())
            return len(out) == len(keys)

        try:
            wait_for(all_out, timeout=120, interval=0.2, message="the mail written during the partition to go out")
        except AssertionError:
            ids = c.message_ids()
            missing = [n for n in during if not any(m.startswith(f"<notification-{n}@") for m in ids)]
            with c.engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT kind, status, attempts, last_error, next_attempt_at, claimed_until, now() "
                        "FROM notifications WHERE id = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": [str(n) for n in missing[:5]]},
                ).all()
            raise AssertionError(f"{len(missing)} of {len(during)} emails not out: {rows}") from None
        all_out_s = time.monotonic() - healed_at
        wait_for(lambda: _job_ran_since(c, healed), timeout=60, interval=0.2, message="a sweep after the partition")
        first_out_s = first_seen[0] - healed_at
        with c.engine.connect() as conn:  # on the database's clock
            sweeps_back_s = conn.execute(
                sa.text(
                    "SELECT EXTRACT(EPOCH FROM min(started_at) - :t) FROM job_runs "
                    "WHERE job <> 'mail' AND started_at > :t"
                ),
                {"t": healed},
            ).scalar_one()
    finally:
        load.stop()
    sent_during = [m for m in at_heal if any(m.startswith(k) for k in keys)]
    _nothing_lost_or_done_twice(c, load)
    c.report(
        f"drill 3, {PARTITION_SECONDS} s partition worker host <-> db host: {_summary(load)}; "
        f"{len(during)} emails written during it, {len(sent_during)} of them out before the heal; after the "
        f"heal the first at the sink {first_out_s:.1f} s, all out {all_out_s:.1f} s, sweeps again "
        f"{float(sweeps_back_s):.1f} s "
        f"(partition {healed_at - cut_at:.1f} s)"
    )
    assert load.failures == [], load.failures[:5]  # the app hosts did not notice
    assert during, "no mail was written during the partition: the drill proved nothing"
    assert not sent_during


def test_drill_4_a_restart_of_postgresql_under_load(cluster, monkeypatch):
    c = cluster
    load = _loaded(c, monkeypatch)
    try:
        before = len(load.booking_ids)
        stop_at = time.monotonic()
        c.pg.stop("fast")
        c.pg.start()
        up_at = time.monotonic()
        restarted = _db_now(c)

        def booked_since() -> bool:
            return any(at > up_at for at in load.confirmed_at)

        try:
            wait_for(booked_since, timeout=60, interval=0.1, message="a booking confirmed after the restart")
        except AssertionError:
            raise AssertionError(
                f"no booking confirmed in 60 s after PostgreSQL was back: {load.failures[-3:]}; "
                f"app1: {c.webs[0].log()[-1500:]}"
            ) from None
        apps_back = time.monotonic() - up_at
        mark = len(load.booking_ids)
        wait_for(lambda: len(load.booking_ids) >= mark + CLIENTS, timeout=60, message="the load to go on")
        with c.engine.connect() as conn:
            fresh = conn.execute(
                sa.text(
                    "SELECT id FROM notifications WHERE created_at > :t AND next_attempt_at <= now() "
                    "ORDER BY created_at LIMIT 1"
                ),
                {"t": restarted},
            ).scalar()
        assert fresh is not None
        try:
            wait_for(
                lambda: any(m.startswith(f"<notification-{fresh}@") for m in c.message_ids()),
                timeout=60,
                interval=0.1,
                message="mail after the restart",
            )
        except AssertionError:
            _dump_stacks(c.workers[0])
            raise AssertionError(f"no mail in 60 s after the restart; the mail worker: {c.workers[0].log()}") from None
        mail_back = time.monotonic() - up_at
        wait_for(lambda: _job_ran_since(c, restarted), timeout=60, interval=0.2, message="a sweep after the restart")
        sweeps_back = time.monotonic() - up_at
        time.sleep(2)
    finally:
        load.stop()
    _nothing_lost_or_done_twice(c, load)
    failed_late = [at - up_at for at in load.failed_at if at > up_at + 5]
    last_failure = max(load.failed_at, default=up_at) - up_at
    c.report(
        f"drill 4, PostgreSQL restarted (fast shutdown, start) under load: {_summary(load)} ({before} before); "
        f"down {up_at - stop_at:.1f} s; bookings again {apps_back:.1f} s after it was up, mail "
        f"{mail_back:.1f} s, sweeps {sweeps_back:.1f} s; the last failure {last_failure:.1f} s after it was up; "
        f"failures: {load.failures[:3]}"
    )
    assert not failed_late, f"requests still failing {failed_late} s after PostgreSQL was back: {load.failures[-3:]}"
    assert not [f for f in load.failures if "Internal server error" in f], load.failures  # 503s, never a 500
    for process in [*c.webs, *c.workers]:
        assert process.proc is not None and process.proc.poll() is None, process.log()  # nobody died
