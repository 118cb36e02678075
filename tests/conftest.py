"""Databases (SQLite and PostgreSQL, migrated once each), a live app server per database, factories.

Every DB test runs on both backends. PostgreSQL is required: when it cannot be reached the
tests fail (set TUTORBOOK_TEST_DATABASES=sqlite to run without it on purpose).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.processes import METRICS_TOKEN
from tests.support.servers import ThreadedServer, http_client, http_post
from tests.web.helpers import WebClient, make_admin
from tutorbook import models
from tutorbook.config import Settings
from tutorbook.db import Database, lost_race
from tutorbook.migrate import upgrade

DATABASES = [d.strip() for d in os.environ.get("TUTORBOOK_TEST_DATABASES", "sqlite,postgresql").split(",") if d.strip()]
PG_ADMIN_URL = os.environ.get("TUTORBOOK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TABLES = [t.name for t in reversed(models.Base.metadata.sorted_tables)]


# This run's own suffix: every PostgreSQL database a test makes is named `<purpose>_<RUN_ID>`, so
# two runs on one server (two checkouts, CI beside a developer) never touch each other's, and the
# run drops exactly the ones it made when it ends (pytest_sessionfinish), never anybody else's.
# TUTORBOOK_TEST_RUN_TAG (scripts/mutation.py) starts it: a session killed before its end is found
# by the tag of the run that started it, which drops its databases.
RUN_ID = f"{os.environ.get('TUTORBOOK_TEST_RUN_TAG', '')}{os.getpid()}_{secrets.token_hex(3)}"
CREATED_PG_DATABASES: list[str] = []


def pg_database(purpose: str) -> str:
    """A new PostgreSQL database of this run for `purpose` (dropped when the run ends); its URL.
    Asked twice for one purpose, the second call starts that database afresh."""
    name = f"{purpose}_{RUN_ID}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if name in CREATED_PG_DATABASES:  # ours, from an earlier test of this run
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
            # A commit need not wait for its WAL to reach the disk (3-4 ms each on this machine,
            # 0.5 ms without): only a crash of PostgreSQL itself could lose the last commits, and
            # no test crashes it (the cluster drills restart a server of their own).
            conn.exec_driver_sql(f"ALTER DATABASE {name} SET synchronous_commit TO off")
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the tests and did not answer at {PG_ADMIN_URL}: {exc}")
    finally:
        admin.dispose()
    if name not in CREATED_PG_DATABASES:
        CREATED_PG_DATABASES.append(name)
    return sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_created_pg_databases() -> list[str]:
    """Drop the databases this run created; the names dropped."""
    dropped: list[str] = []
    if not CREATED_PG_DATABASES:
        return dropped
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            while CREATED_PG_DATABASES:
                name = CREATED_PG_DATABASES.pop()
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                dropped.append(name)
    except sa.exc.OperationalError:
        pass  # PostgreSQL went away; nothing of ours can be left to drop that we could reach
    finally:
        admin.dispose()
    return dropped


def pytest_sessionfinish(session, exitstatus):
    drop_created_pg_databases()


def make_settings(url: str, var_dir: Path, **overrides) -> Settings:
    values = dict(
        database_url=url,
        var_dir=var_dir,
        jwt_secret="test-secret-" + "x" * 32,
        stripe_webhook_secret="whsec_test_secret",
        stripe_connect_webhook_secret="whsec_test_connect_secret",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        jobs_enabled=False,
        log_json=True,
        stripe_max_network_retries=0,
        stripe_timeout_seconds=5,
        metrics_token=METRICS_TOKEN,
    )
    values.update(overrides)
    return Settings(**values).resolved()


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request, tmp_path_factory) -> str:
    """A migrated database of each kind, once per test session. TUTORBOOK_TEST_SQLITE_TEMPLATE: a
    SQLite file migrated already, copied instead of migrating (scripts/mutation.py: seconds a mutant)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "tutorbook.db"
        url = f"sqlite:///{path}"
        template = os.environ.get("TUTORBOOK_TEST_SQLITE_TEMPLATE")
        if template:
            shutil.copyfile(template, path)
            return url
    elif request.param == "postgresql":
        url = pg_database("tutorbook_test")
    else:
        raise ValueError(request.param)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def shared_db(database_url) -> Database:
    db = Database(database_url, pool_size=20)
    yield db
    db.dispose()


def wipe(db: Database, attempts: int = 5) -> None:
    """Empty every table (children first) and, on PostgreSQL, start the serial ids at 1 again.

    DELETE, not TRUNCATE: on PostgreSQL a TRUNCATE of the 23 nearly empty tables made new files
    for each and took 0.3-0.45 s per test (DELETE: 10-20 ms), a third of the suite's PostgreSQL
    time. A DELETE can lose to the last test's work still finishing in the live app (a webhook
    the sandbox delivered late): a deadlock, or a row it adds under a parent being deleted (a
    foreign key violation). Then the whole wipe is tried again."""
    for attempt in range(attempts):
        try:
            with db.engine.begin() as conn:
                if not db.is_sqlite:  # as TRUNCATE did: wait for the transactions in flight, hold off new ones
                    conn.exec_driver_sql(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
                for table in TABLES:
                    conn.exec_driver_sql(f"DELETE FROM {table}")
                if not db.is_sqlite:
                    conn.exec_driver_sql(
                        "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n"
                        " ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = current_schema()"
                    )
            return
        except sa.exc.DBAPIError as exc:
            if not lost_race(exc) or attempt == attempts - 1:  # a deadlock, PostgreSQL's choice of loser
                raise
            time.sleep(0.1)


@pytest.fixture
def db(shared_db) -> Database:
    """A clean database for this test."""
    wipe(shared_db)
    return shared_db


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """The Stripe sandbox, once per session, over real HTTP on 127.0.0.1."""
    from stripe_sandbox.config import SandboxConfig
    from stripe_sandbox.server import start_in_thread

    config = SandboxConfig(
        db_path=str(tmp_path_factory.mktemp("sandbox") / "sandbox.db"),
        webhook_secret="whsec_test_secret",
        connect_webhook_secret="whsec_test_connect_secret",
        retry_schedule_s=(0.2, 0.5, 1),
        expiry_check_interval_s=0.2,
    )
    handle = start_in_thread(config)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def live_app(shared_db, sandbox, tmp_path_factory):
    """The app on a real port, sharing the test database, talking to the sandbox."""
    from tests.support.servers import free_port
    from tutorbook.app import create_app

    port = free_port()
    settings = make_settings(
        shared_db.url,
        tmp_path_factory.mktemp("var"),
        public_url=f"http://127.0.0.1:{port}",
        sandbox_url=sandbox.base_url,
    )
    app = create_app(settings, db=shared_db)
    server = ThreadedServer(app, port=port).start()
    app.state.base_url = server.base_url
    yield app
    server.stop()


@pytest.fixture
def api(live_app, db, sandbox):
    """A clean database (the login throttle's failures too: they live in it), the live app, and
    the sandbox delivering to it."""
    http_post(
        f"{sandbox.base_url}/_sandbox/config",
        json={
            "webhook_url": live_app.state.base_url + "/api/StripeWebhook/webhook",
            "connect_webhook_url": live_app.state.base_url + "/api/StripeWebhook/connect",
            "deliver_webhooks": True,
            "latency_ms": 0,
            "fail_mode": None,
            "substitute_cancel_url": False,
            "connect_enabled": True,
            "platform_country": "US",
        },
    ).raise_for_status()
    return live_app


@pytest.fixture
def admin(api):
    """An admin account (as `tutorbook create-admin` makes one): {"email", "id"}."""
    return make_admin(api)


@pytest.fixture
def admin_web(api, admin):
    """The admin logged in to the pages."""
    client = WebClient(api.state.base_url)
    client.login(admin["email"])
    yield client
    client.close()


@pytest.fixture
def c(api):
    """An anonymous client of the live app."""
    with http_client(base_url=api.state.base_url, timeout=60) as client:
        yield client
