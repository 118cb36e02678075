"""The reference deployment (deploy/) on one machine, PostgreSQL only, its files as shipped (only
addresses, ports and authentication substituted): Debian's PgBouncer running deploy/pgbouncer.ini
(transaction mode; every process through it with TUTORBOOK_DB_PGBOUNCER=true, migrations and LISTEN
direct), `tutorbook db upgrade`, two `tutorbook serve --no-jobs` replicas, `tutorbook worker --only
mail` and `tutorbook worker --only <the other jobs>`, and Debian's HAProxy running
deploy/haproxy.cfg. Through the balancer: the seed flow (register, book, pay on the Stripe
sandbox, confirm); then a rolling restart of both replicas under constant booking and list load,
each replica drained on HAProxy's runtime API, SIGTERMed (exit 0), started again and set ready
(deploy/rolling-restart). Asserted: 0 failed requests at the client, every booking Confirmed with
its payment, no email sent twice. Prints its figures (docs/RELIABILITY.md)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests import conftest
from tests import factories as f
from tests.jobs.helpers import confirmed
from tests.support.processes import app_env
from tests.support.servers import free_port, http_client, http_get, wait_for
from tutorbook import jobs

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEPLOY_CFG = DEPLOY / "haproxy.cfg"
POOL_SIZE = 5  # TUTORBOOK_DB_POOL_SIZE of deploy/compose.yaml
DRAIN_SECONDS = 5  # TUTORBOOK_SHUTDOWN_DRAIN_SECONDS of deploy/compose.yaml
CLIENTS = 3  # booking threads; each also lists its bookings after every confirmation
OTHER_JOBS = ",".join(name for name in jobs.JOBS if name != "mail")

pytestmark = pytest.mark.skipif("postgresql" not in conftest.DATABASES, reason="a cluster runs on PostgreSQL")


def haproxy_config(*, frontend: int, admin: int, replicas: list[int]) -> str:
    """deploy/haproxy.cfg with this test's ports: every other line as shipped."""
    text = DEPLOY_CFG.read_text()
    text, n_bind = re.subn(r"(?m)^(\s*)bind :8080$", rf"\1bind 127.0.0.1:{frontend}", text)
    text, n_sock = re.subn(r"ipv4@127\.0\.0\.1:9999", f"ipv4@127.0.0.1:{admin}", text)
    for i, port in enumerate(replicas, start=1):
        text, n = re.subn(rf"(?m)^(\s*server web{i}) web{i}:8000$", rf"\1 127.0.0.1:{port}", text)
        assert n == 1, f"server web{i} not in deploy/haproxy.cfg"
    assert n_bind == n_sock == 1, "deploy/haproxy.cfg changed shape: update this test"
    return text


def pgbouncer_config(*, port: int, database: str, auth_file: Path) -> str:
    """deploy/pgbouncer.ini with this test's port and database, trusting 127.0.0.1."""
    text = DEPLOY.joinpath("pgbouncer.ini").read_text()
    subs = [
        (r"(?m)^tutorbook = host=postgres port=5432 dbname=tutorbook$", f"{database} = host=127.0.0.1 port=5432"),
        (r"(?m)^listen_addr = 0\.0\.0\.0$", "listen_addr = 127.0.0.1"),
        (r"(?m)^listen_port = 6432$", f"listen_port = {port}"),
        (r"(?m)^auth_type = scram-sha-256$", "auth_type = trust"),
        (r"(?m)^auth_file = .*$", f"auth_file = {auth_file}"),
    ]
    for pattern, replacement in subs:
        text, n = re.subn(pattern, replacement, text)
        assert n == 1, f"{pattern} not in deploy/pgbouncer.ini: update this test"
    return text


class PgBouncer:
    """deploy/pgbouncer.ini run by Debian's pgbouncer (as `nobody` when root: it refuses root)."""

    def __init__(self, *, database: str) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        os.chmod(self.dir, 0o755)
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        self.ini = self.dir / "pgbouncer.ini"
        self.ini.write_text(pgbouncer_config(port=self.port, database=database, auth_file=self.dir / "userlist.txt"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.log = open(self.dir / "pgbouncer.log", "wb")
        self.proc = subprocess.Popen([PGBOUNCER, *user, str(self.ini)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._listens, timeout=10, message="pgbouncer to listen")
        return self

    def _listens(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def url(self, direct: str) -> str:
        return sa.engine.make_url(direct).set(port=self.port).render_as_string(hide_password=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class HAProxy:
    def __init__(self, *, replicas: list[int]) -> None:
        self.port, self.admin = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="haproxy-"))
        self.cfg = self.dir / "haproxy.cfg"
        self.cfg.write_text(haproxy_config(frontend=self.port, admin=self.admin, replicas=replicas))
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> HAProxy:
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(self.cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.log = open(self.dir / "haproxy.log", "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._answers(), timeout=10, message="haproxy to listen")
        return self

    def _answers(self) -> bool:
        try:
            self.command("show info")
            return True
        except OSError:
            return False

    def command(self, line: str) -> str:
        """One command on the runtime API (the `stats socket` of deploy/haproxy.cfg)."""
        with socket.create_connection(("127.0.0.1", self.admin), timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stat(self, proxy: str, name: str) -> dict:
        """A `show stat` row: proxy "web" and a server name (status UP/DOWN/DRAIN/..., scur), or
        "www"/"FRONTEND", "web"/"BACKEND" (req_tot, hrsp_5xx, wretr, wredis)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == proxy and row.get("svname") == name:
                return row
        raise AssertionError(f"no {proxy}/{name} in {lines}")

    def server(self, name: str) -> dict:
        return self.stat("web", name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Tutorbook:
    """A `tutorbook …` command as its own process, its settings in the environment."""

    def __init__(self, args: list[str], *, env: dict, log: Path) -> None:
        self.args, self.env, self.log_path = args, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Tutorbook:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tutorbook.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def terminate(self, timeout: float = 40) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def _ready(url: str) -> bool:
    try:
        return http_get(url + "/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def cluster(tmp_path):
    if not Path(HAPROXY).exists():
        pytest.fail("haproxy is not installed: scripts/ensure-haproxy (apt-get install -y haproxy)")
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: scripts/ensure-pgbouncer (apt-get install -y pgbouncer)")
    from stripe_sandbox.config import SandboxConfig
    from stripe_sandbox.server import start_in_thread

    database = conftest.pg_database("haproxy")
    bouncer = PgBouncer(database=sa.engine.make_url(database).database).start()
    ports = [free_port(), free_port()]
    balancer = HAProxy(replicas=ports)
    sandbox = start_in_thread(
        SandboxConfig(
            db_path=str(tmp_path / "sandbox.db"),
            webhook_secret="whsec_test_secret",
            connect_webhook_secret="whsec_test_connect_secret",
            webhook_url=balancer.base_url + "/api/StripeWebhook/webhook",
            connect_webhook_url=balancer.base_url + "/api/StripeWebhook/connect",
            retry_schedule_s=(0.2, 0.5, 1),
            expiry_check_interval_s=0.2,
        )
    )
    # The settings of deploy/compose.yaml's x-tutorbook-env: every process through PgBouncer,
    # migrations and LISTEN direct.
    env = app_env(
        database_url=bouncer.url(database),
        database_direct_url=database,
        db_pgbouncer="true",
        db_pool_size=POOL_SIZE,
        sandbox_url=sandbox.base_url,
        sandbox_enabled="false",
        stripe_connect_webhook_secret="whsec_test_connect_secret",
        public_url=balancer.base_url,
        trusted_proxies="127.0.0.1",
        shutdown_grace_seconds=30,
        shutdown_drain_seconds=DRAIN_SECONDS,
        job_mail_interval_s=2,
        log_level="WARNING",
    )
    upgrade = subprocess.run(
        [sys.executable, "-m", "tutorbook.cli", "db", "upgrade"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    webs = [
        Tutorbook(
            ["serve", "--no-jobs", "--host", "127.0.0.1", "--port", str(p)], env=env, log=tmp_path / f"web{i}.log"
        )
        for i, p in enumerate(ports, start=1)
    ]
    workers = [
        Tutorbook(["worker", "--only", "mail"], env=env, log=tmp_path / "worker-mail.log"),
        Tutorbook(["worker", "--only", OTHER_JOBS], env=env, log=tmp_path / "worker-sweeps.log"),
    ]
    everything = [*webs, *workers]
    try:
        for process in everything:
            process.start()
        for web, port in zip(webs, ports, strict=True):
            wait_for(lambda p=port: _ready(f"http://127.0.0.1:{p}"), timeout=60, message=f"web on {port}: {web.log()}")
        balancer.start()
        wait_for(
            lambda: all(balancer.server(n)["status"] == "UP" for n in ("web1", "web2")),
            timeout=15,
            message="both replicas UP in HAProxy",
        )
        yield {
            "bouncer": bouncer,
            "balancer": balancer,
            "webs": webs,
            "ports": ports,
            "workers": workers,
            "database": database,
        }
        for worker in workers:  # a worker too stops cleanly
            assert worker.terminate() == 0, worker.log()
    finally:
        for process in everything:
            process.kill()
        balancer.stop()
        sandbox.stop()
        bouncer.stop()


class Load:
    """CLIENTS threads booking, paying and confirming through the balancer, and listing their
    bookings, until stopped; every request counted, every failure kept."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.requests = 0
        self.failures: list[str] = []
        self.booking_ids: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def counted(self, response: httpx.Response) -> None:
        with self._lock:
            self.requests += 1

    def _client(self) -> None:
        with http_client(base_url=self.base_url, timeout=60, event_hooks={"response": [self.counted]}) as c:
            teacher = parent = None
            day = 0
            while not self.stopping.is_set():
                try:
                    day += 1
                    if teacher is None or day > 40:  # a fresh pair before the booking window ends
                        teacher, parent, day = f.teacher(c), f.parent(c), 2
                    x = confirmed(c, teacher=teacher, parent=parent, days=day)
                    with self._lock:
                        self.booking_ids.append(x["b"]["id"])
                    r = parent["client"].get("/api/Sessions/my-bookings")
                    assert r.status_code == 200, r.text
                except (AssertionError, httpx.HTTPError, KeyError) as exc:
                    with self._lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}"[:500])
                    teacher = None

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(120)


def _rolling_restart(cluster, index: int, *, drain: str = "balancer") -> float:
    """Restart web{index} under load, the seconds that took until HAProxy has it UP again.
    drain="balancer": drain it on HAProxy's runtime API, wait until it has no request, SIGTERM it
    (exit 0), start it, wait until it is ready, set it ready (deploy/rolling-restart until issue
    #31's self-drain). drain="self": SIGTERM alone; the replica drains itself
    (TUTORBOOK_SHUTDOWN_DRAIN_SECONDS: /health/ready 503 until HAProxy's check takes it out, then
    exit 0), start it, and HAProxy's check brings it back. drain="none": SIGTERM at once on a
    replica without a drain (the control)."""
    balancer, web, port = cluster["balancer"], cluster["webs"][index - 1], cluster["ports"][index - 1]
    name = f"web{index}"
    started = time.monotonic()
    if drain == "balancer":
        balancer.command(f"set server web/{name} state drain")
        wait_for(lambda: balancer.server(name)["scur"] == "0", timeout=40, message=f"{name} drained")
    assert web.terminate() == 0, web.log()
    if drain == "self":
        assert balancer.server(name)["status"].startswith("DOWN"), balancer.server(name)
    web.start()
    wait_for(lambda: _ready(f"http://127.0.0.1:{port}"), timeout=60, message=f"{name} ready: {web.log()}")
    if drain == "balancer":
        balancer.command(f"set server web/{name} state ready")
    wait_for(lambda: balancer.server(name)["status"] == "UP", timeout=15, message=f"{name} UP in HAProxy")
    return time.monotonic() - started


def _counting(load: Load, monkeypatch) -> None:
    """Every client the factories make (one per registered user) counts its responses too."""
    monkeypatch.setattr(f, "http_client", lambda **kw: http_client(event_hooks={"response": [load.counted]}, **kw))


@pytest.mark.parametrize("drain", ["balancer", "self"])
def test_rolling_restart_behind_haproxy_loses_no_request_and_does_nothing_twice(cluster, monkeypatch, drain):
    """drain="self" is deploy/rolling-restart's way (issue #31: a replica drains itself)."""
    balancer = cluster["balancer"]
    load = Load(balancer.base_url)
    _counting(load, monkeypatch)
    with http_client(base_url=balancer.base_url, timeout=60) as c:  # the seed flow, once, through it
        first = confirmed(c)
        assert first["p"]["client"].get("/api/Sessions/my-bookings").json()["data"]["items"][0]["status"] == 1

    load.start()
    try:
        time.sleep(3)  # under load before the first stop
        took = [_rolling_restart(cluster, 1, drain=drain)]
        time.sleep(2)
        took.append(_rolling_restart(cluster, 2, drain=drain))
        time.sleep(3)
    finally:
        load.stop()
    ids = [first["b"]["id"], *load.booking_ids]
    front, back = balancer.stat("www", "FRONTEND"), balancer.stat("web", "BACKEND")
    print(
        f"\nrolling restart behind HAProxy, drain={drain}: {load.requests} requests from {CLIENTS} clients, "
        f"{len(load.failures)} failed, {len(load.booking_ids)} bookings made, paid and confirmed under load; "
        f"web1 restart {took[0]:.1f} s, web2 restart {took[1]:.1f} s (drain, SIGTERM, exit 0, start, ready, UP); "
        f"HAProxy: {front['req_tot']} requests in (webhooks included), {front['hrsp_5xx']} 5xx, "
        f"{back['wretr']} retries, {back['wredis']} redispatches"
    )
    assert load.failures == [], load.failures[:5]
    assert len(load.booking_ids) >= 2 * CLIENTS  # the load really ran across the restarts
    assert "login attempt" in (cluster["bouncer"].dir / "pgbouncer.log").read_text()  # through PgBouncer

    engine = sa.create_engine(cluster["database"])
    try:

        def every_booking_mailed() -> bool:
            with engine.connect() as conn:
                mailed = conn.execute(
                    sa.text(
                        "SELECT count(DISTINCT booking_id) FROM notifications "
                        "WHERE status = 'sent' AND booking_id = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": ids},
                ).scalar()
            return mailed == len(ids)

        wait_for(every_booking_mailed, timeout=60, message="an email sent for every booking")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT b.status, p.stripe_payment_intent_id FROM private_sessions b LEFT JOIN payments p"
                    " ON p.booking_id = b.id AND p.state <> 'refused' WHERE b.id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": ids},
            ).all()
            assert len(rows) == len(ids)
            assert all(status == 1 and intent for status, intent in rows), rows
            twice = conn.execute(
                sa.text(
                    "SELECT booking_id, user_id, kind, version, count(*) FROM notifications "
                    "GROUP BY booking_id, user_id, kind, version HAVING count(*) > 1"
                )
            ).all()
            assert twice == []
            sent_twice = conn.execute(
                sa.text(
                    "SELECT notification_id, count(*) FROM dev_mail WHERE notification_id IS NOT NULL "
                    "GROUP BY notification_id HAVING count(*) > 1"
                )
            ).all()
            assert sent_twice == []
    finally:
        engine.dispose()


@pytest.mark.skipif(
    not os.environ.get("TUTORBOOK_HEAVY"),
    reason="the control needs a POST to meet a replica's SIGTERM on its way, which is likely, not "
    "certain: TUTORBOOK_HEAVY=1 runs it",
)
def test_without_the_drain_sigterm_alone_loses_requests(cluster, monkeypatch):
    """The control: what the drain is for. The replica stops accepting at SIGTERM, and HAProxy
    retries a refused connection elsewhere; but a request that reached the replica just as it
    stopped is closed unanswered, and a POST that was sent is not replayed (it may have run)."""
    for index, web in enumerate(cluster["webs"], start=1):  # replicas without the self-drain
        web.env = {**web.env, "TUTORBOOK_SHUTDOWN_DRAIN_SECONDS": "0"}
        _rolling_restart(cluster, index, drain="balancer")
    load = Load(cluster["balancer"].base_url)
    _counting(load, monkeypatch)
    load.start()
    try:
        time.sleep(3)
        for index in (1, 2, 1, 2):
            _rolling_restart(cluster, index, drain="none")
            time.sleep(1)
    finally:
        load.stop()
    print(f"\nwithout the drain: {load.requests} requests, {len(load.failures)} failed: {load.failures[:3]}")
    assert load.failures
