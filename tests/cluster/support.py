"""What the cluster tests share: the reference deployment's PgBouncer and HAProxy (deploy/, only
addresses, ports and authentication substituted) and `tutorbook …` commands as processes, each
optionally inside a network namespace (tests/cluster/test_hosts.py); the booking load through the
balancer."""

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
# The drills (a rolling restart behind HAProxy, the multi-host faults) take minutes of processes
# starting and stopping: `.ci/run` runs them (TUTORBOOK_CLUSTER_DRILLS=1); a plain `make test` skips.
DRILLS = pytest.mark.skipif(
    os.environ.get("TUTORBOOK_CLUSTER_DRILLS", "") not in ("1", "true"),
    reason="the cluster drills take minutes: .ci/run runs them (TUTORBOOK_CLUSTER_DRILLS=1)",
)
# make test runs the suite on two pytest-xdist workers (--dist loadgroup): the drills all go to one
# of them, one after another (test_hosts.py's cluster is one module-scoped fixture; each drill's
# figures are read with no other drill beside it), while the other worker runs the rest.
SERIAL = pytest.mark.xdist_group("cluster-drills")


def in_netns(netns: str | None) -> list[str]:
    """The command prefix that runs a program inside network namespace `netns` (none: here)."""
    return ["ip", "netns", "exec", netns] if netns else []


def haproxy_config(*, frontend: int, admin: int, replicas: list[str], bind: str = "127.0.0.1") -> str:
    """deploy/haproxy.cfg with this test's addresses (`replicas`: "host:port" of web1, web2, ...):
    every other line as shipped."""
    text = DEPLOY_CFG.read_text()
    text, n_bind = re.subn(r"(?m)^(\s*)bind :8080$", rf"\1bind {bind}:{frontend}", text)
    text, n_sock = re.subn(r"ipv4@127\.0\.0\.1:9999", f"ipv4@127.0.0.1:{admin}", text)
    for i, address in enumerate(replicas, start=1):
        text, n = re.subn(rf"(?m)^(\s*server web{i}) web{i}:8000$", rf"\1 {address}", text)
        assert n == 1, f"server web{i} not in deploy/haproxy.cfg"
    assert n_bind == n_sock == 1, "deploy/haproxy.cfg changed shape: update this test"
    return text


def pgbouncer_config(
    *, port: int, database: str, auth_file: Path, listen: str = "127.0.0.1", server: str = "host=127.0.0.1 port=5432"
) -> str:
    """deploy/pgbouncer.ini with this test's addresses and database, trusting its clients."""
    text = DEPLOY.joinpath("pgbouncer.ini").read_text()
    subs = [
        (r"(?m)^tutorbook = host=postgres port=5432 dbname=tutorbook$", f"{database} = {server}"),
        (r"(?m)^listen_addr = 0\.0\.0\.0$", f"listen_addr = {listen}"),
        (r"(?m)^listen_port = 6432$", f"listen_port = {port}"),
        (r"(?m)^auth_type = scram-sha-256$", "auth_type = trust"),
        (r"(?m)^auth_file = .*$", f"auth_file = {auth_file}"),
    ]
    for pattern, replacement in subs:
        text, n = re.subn(pattern, replacement, text)
        assert n == 1, f"{pattern} not in deploy/pgbouncer.ini: update this test"
    return text


def listens(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class PgBouncer:
    """deploy/pgbouncer.ini run by Debian's pgbouncer (as `nobody` when root: it refuses root),
    on `listen` (in network namespace `netns`, if given) in front of PostgreSQL at `server`."""

    def __init__(
        self,
        *,
        database: str,
        listen: str = "127.0.0.1",
        port: int | None = None,
        server: str = "host=127.0.0.1 port=5432",
        netns: str | None = None,
    ) -> None:
        self.host, self.port, self.netns = listen, port or free_port(), netns
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        os.chmod(self.dir, 0o755)
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        self.ini = self.dir / "pgbouncer.ini"
        self.ini.write_text(
            pgbouncer_config(
                port=self.port, database=database, auth_file=self.dir / "userlist.txt", listen=listen, server=server
            )
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.log = open(self.dir / "pgbouncer.log", "wb")
        self.proc = subprocess.Popen(
            [*in_netns(self.netns), PGBOUNCER, *user, str(self.ini)], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(lambda: listens(self.host, self.port), timeout=10, message="pgbouncer to listen")
        return self

    def url(self, direct: str) -> str:
        return sa.engine.make_url(direct).set(host=self.host, port=self.port).render_as_string(hide_password=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class HAProxy:
    """deploy/haproxy.cfg run by Debian's HAProxy on `bind`, in front of `replicas` ("host:port"),
    its runtime API on 127.0.0.1."""

    def __init__(self, *, replicas: list[str], bind: str = "127.0.0.1") -> None:
        self.port, self.admin = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="haproxy-"))
        self.cfg = self.dir / "haproxy.cfg"
        self.cfg.write_text(haproxy_config(frontend=self.port, admin=self.admin, replicas=replicas, bind=bind))
        self.base_url = f"http://{bind}:{self.port}"
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
    """A `tutorbook …` command as its own process (in network namespace `netns`, if given), its
    settings in the environment."""

    def __init__(self, args: list[str], *, env: dict, log: Path, netns: str | None = None) -> None:
        self.args, self.env, self.log_path, self.netns = args, env, log, netns
        self.proc: subprocess.Popen | None = None

    def start(self) -> Tutorbook:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*in_netns(self.netns), sys.executable, "-m", "tutorbook.cli", *self.args],
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


def deploy_env(*, direct: str, bouncer: PgBouncer, sandbox_url: str, public_url: str, proxy: str, **extra) -> dict:
    """The settings of deploy/compose.yaml's x-tutorbook-env: every process through PgBouncer,
    migrations and LISTEN straight to PostgreSQL (`direct`), HAProxy (`proxy`) the one trusted
    proxy, the 5 s drain; then `extra`."""
    return app_env(
        database_url=bouncer.url(direct),
        database_direct_url=direct,
        db_pgbouncer="true",
        db_pool_size=POOL_SIZE,
        sandbox_url=sandbox_url,
        sandbox_enabled="false",
        stripe_connect_webhook_secret="whsec_test_connect_secret",
        public_url=public_url,
        trusted_proxies=proxy,
        shutdown_grace_seconds=30,
        shutdown_drain_seconds=DRAIN_SECONDS,
        log_level="WARNING",
        **extra,
    )


def upgrade(env: dict) -> None:
    """`tutorbook db upgrade`, the release step, with these settings."""
    done = subprocess.run(
        [sys.executable, "-m", "tutorbook.cli", "db", "upgrade"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def ready(url: str) -> bool:
    try:
        return http_get(url + "/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def rolling_restart(balancer: HAProxy, web: Tutorbook, *, name: str, url: str, drain: str = "balancer") -> float:
    """Restart replica `name` (HAProxy's server name; `url` its own address) under load, the
    seconds that took until HAProxy has it UP again.
    drain="balancer": drain it on HAProxy's runtime API, wait until it has no request, SIGTERM it
    (exit 0), start it, wait until it is ready, set it ready (deploy/rolling-restart until issue
    #31's self-drain). drain="self": SIGTERM alone; the replica drains itself
    (TUTORBOOK_SHUTDOWN_DRAIN_SECONDS: /health/ready 503 until HAProxy's check takes it out, then
    exit 0), start it, and HAProxy's check brings it back. drain="none": SIGTERM at once on a
    replica without a drain (the control)."""
    started = time.monotonic()
    if drain == "balancer":
        balancer.command(f"set server web/{name} state drain")
        wait_for(lambda: balancer.server(name)["scur"] == "0", timeout=40, message=f"{name} drained")
    assert web.terminate() == 0, web.log()
    if drain == "self":
        assert balancer.server(name)["status"].startswith("DOWN"), balancer.server(name)
    web.start()
    wait_for(lambda: ready(url), timeout=60, message=f"{name} ready: {web.log()}")
    if drain == "balancer":
        balancer.command(f"set server web/{name} state ready")
    wait_for(lambda: balancer.server(name)["status"] == "UP", timeout=15, message=f"{name} UP in HAProxy")
    return time.monotonic() - started


class Load:
    """`clients` threads booking, paying and confirming through the balancer, and listing their
    bookings, until stopped; every request counted, every failure kept (with its time)."""

    def __init__(self, base_url: str, *, clients: int = CLIENTS) -> None:
        self.base_url = base_url
        self.requests = 0
        self.failures: list[str] = []
        self.failed_at: list[float] = []  # time.monotonic() of each failure
        self.booking_ids: list[str] = []
        self.confirmed_at: list[float] = []  # time.monotonic() of each confirmation
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

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
                        self.confirmed_at.append(time.monotonic())
                    r = parent["client"].get("/api/Sessions/my-bookings")
                    assert r.status_code == 200, r.text
                except Exception as exc:  # any failure counts (and the client goes on)
                    with self._lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}"[:500])
                        self.failed_at.append(time.monotonic())
                    teacher = None

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(120)


def counting(load: Load, monkeypatch) -> None:
    """Every client the factories make (one per registered user) counts its responses too."""
    monkeypatch.setattr(f, "http_client", lambda **kw: http_client(event_hooks={"response": [load.counted]}, **kw))
