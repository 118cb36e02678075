"""Through PgBouncer in transaction mode (Debian's package, started here on a free port): with
TUTORBOOK_DB_PGBOUNCER=true, bookings are made, paid and confirmed through an app whose every
connection goes through a pool of 3 server connections, many clients at once (so consecutive
transactions of one client land on different server connections: the trap for prepared statements).
Migrations and LISTEN use TUTORBOOK_DATABASE_DIRECT_URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import conftest
from tests.jobs.helpers import confirmed
from tests.support.servers import ThreadedServer, free_port, http_client, http_post
from tutorbook.app import create_app
from tutorbook.db import Database
from tutorbook.flows.services import open_database

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
PARALLEL = 6


class PgBouncer:
    """pgbouncer in transaction mode in front of the test's PostgreSQL, run as `nobody`."""

    def __init__(self, *, pool_size: int = 3) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        os.chmod(self.dir, 0o777)
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir}/userlist.txt\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
            f"logfile = {self.dir}/pgbouncer.log\npidfile = {self.dir}/pgbouncer.pid\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
        self.proc = subprocess.Popen([PGBOUNCER, *user, str(self.dir / "pgbouncer.ini")])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with Database(self.url("postgres"), use_async=False).engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return self
            except sa.exc.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not start: " + self.log())

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pgbouncer(api):
    if api.state.db.is_sqlite:
        pytest.skip("PgBouncer pools PostgreSQL connections")
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: apt-get install -y pgbouncer")
    bouncer = PgBouncer().start()
    yield bouncer
    bouncer.stop()


def _app_through(bouncer, api, sandbox, tmp_path, *, pgbouncer_mode: bool):
    direct = api.state.db.url
    port = free_port()
    settings = conftest.make_settings(
        bouncer.url(sa.engine.make_url(direct).database),
        tmp_path,
        public_url=f"http://127.0.0.1:{port}",
        sandbox_url=sandbox.base_url,
        database_direct_url=direct,
        db_pgbouncer=pgbouncer_mode,
        db_pool_size=PARALLEL,
    )
    app = create_app(settings, db=open_database(settings))
    server = ThreadedServer(app, port=port).start()
    http_post(
        f"{sandbox.base_url}/_sandbox/config",
        json={
            "webhook_url": server.base_url + "/api/StripeWebhook/webhook",
            "connect_webhook_url": server.base_url + "/api/StripeWebhook/connect",
        },
    ).raise_for_status()
    return app, server


def test_bookings_are_made_paid_and_confirmed_through_pgbouncer_in_transaction_mode(api, sandbox, pgbouncer, tmp_path):
    app, server = _app_through(pgbouncer, api, sandbox, tmp_path, pgbouncer_mode=True)
    try:

        def one_booking(_i):
            with http_client(base_url=server.base_url, timeout=60) as client:
                x = confirmed(client)
                for _ in range(3):  # the async read path, again and again on other server connections
                    r = x["p"]["client"].get("/api/Sessions/my-bookings")
                    assert r.status_code == 200 and r.json()["data"]["items"][0]["status"] == 1, r.text
                return x["b"]["id"]

        with ThreadPoolExecutor(PARALLEL) as pool:
            ids = list(pool.map(one_booking, range(PARALLEL * 2)))
    finally:
        server.stop()
        app.state.db.dispose()
    with api.state.db.engine.connect() as conn:
        statuses = (
            conn.execute(
                sa.text("SELECT status FROM private_sessions WHERE id = ANY(:ids)"), {"ids": [str(i) for i in ids]}
            )
            .scalars()
            .all()
        )
    assert sorted(statuses) == [1] * len(ids)
    assert "login attempt" in pgbouncer.log()  # the app's connections really went through it


@pytest.mark.skipif(
    not os.environ.get("TUTORBOOK_HEAVY"),
    reason="the control needs two clients' statements to meet on one server connection, which is "
    "likely, not certain: TUTORBOOK_HEAVY=1 runs it",
)
def test_without_the_setting_the_same_app_fails_through_pgbouncer(api, sandbox, pgbouncer, tmp_path):
    """The control: what TUTORBOOK_DB_PGBOUNCER is for. asyncpg prepares a statement in one
    exchange and runs it in the next; outside a transaction PgBouncer may give the second to
    another server connection, where the statement does not exist (a 500)."""
    app, server = _app_through(pgbouncer, api, sandbox, tmp_path, pgbouncer_mode=False)

    def one_booking(_i) -> str | None:
        try:
            with http_client(base_url=server.base_url, timeout=60) as client:
                x = confirmed(client)
                for _ in range(3):
                    r = x["p"]["client"].get("/api/Sessions/my-bookings")
                    assert r.status_code == 200, r.text
        except AssertionError as exc:
            return str(exc)
        return None

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            failures = [f for f in pool.map(one_booking, range(PARALLEL * 2)) if f]
    finally:
        server.stop()
        app.state.db.dispose()
    assert failures and all("Internal server error" in f for f in failures)


def test_the_setting_turns_off_every_server_side_statement_cache(api):
    from tutorbook.db import async_url

    url, args = async_url("postgresql+psycopg://u@h:6432/db?application_name=tb", pgbouncer=True)
    assert "prepared_statement_cache_size=0" in url and args["statement_cache_size"] == 0
    names = {args["prepared_statement_name_func"]() for _ in range(3)}
    assert len(names) == 3  # unique names: no clash on a server connection another client used
    plain_url, plain_args = async_url("postgresql+psycopg://u@h/db")
    assert "prepared_statement_cache_size" not in plain_url and "statement_cache_size" not in plain_args
    if api.state.db.is_sqlite:
        return
    for pgbouncer, threshold in ((True, None), (False, 5)):  # psycopg's default: prepare after 5 runs
        db = Database(api.state.db.url, pgbouncer=pgbouncer, use_async=False)
        with db.engine.connect() as conn:
            assert conn.connection.dbapi_connection.prepare_threshold == threshold
        db.dispose()
