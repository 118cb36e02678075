"""Crash: SIGKILL the server in the middle of a load of bookings and payments, restart it, let the
sandbox redeliver and the jobs run: no payment lost, no Pending left past its expiry, and the
reconciliation finds nothing. PostgreSQL, the app in its own process."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from tests import factories as f
from tests.conftest import make_settings, pg_database
from tests.support import payments as pay
from tests.support.processes import AppProcess, app_env
from tests.support.servers import free_port, http_client, http_get, http_post, wait_for
from tutorbook import jobs
from tutorbook.bookings.models import Booking
from tutorbook.clock import utc_now
from tutorbook.db import Database
from tutorbook.flows.services import build_services
from tutorbook.migrate import upgrade
from tutorbook.payments.models import Refund

LOAD = int(os.environ.get("TUTORBOOK_CRASH_LOAD", "40"))

pytestmark = pytest.mark.skipif(
    "postgresql" not in os.environ.get("TUTORBOOK_TEST_DATABASES", "sqlite,postgresql"), reason="needs PostgreSQL"
)


@pytest.fixture
def sandbox(tmp_path):
    """A sandbox of its own: redelivery below re-sends every event it holds."""
    from stripe_sandbox.config import SandboxConfig
    from stripe_sandbox.server import start_in_thread

    handle = start_in_thread(
        SandboxConfig(
            db_path=str(tmp_path / "sandbox.db"),
            webhook_secret="whsec_test_secret",
            retry_schedule_s=(0.2, 0.5, 1),
            expiry_check_interval_s=0.5,
        )
    )
    yield handle
    handle.stop()


def test_a_killed_server_loses_no_payment_and_leaves_nothing_stuck(sandbox, tmp_path):
    url = pg_database("tutorbook_crash")
    upgrade(url)
    port = free_port()
    env = app_env(database_url=url, sandbox_url=sandbox.base_url)
    app = AppProcess(env=env, port=port, log_dir=tmp_path).start()
    pay.sandbox_config(
        sandbox, webhook_url=f"{app.base_url}/api/StripeWebhook/webhook", deliver_webhooks=True, fail_mode=None
    )
    c = http_client(base_url=app.base_url, timeout=30)
    teachers = [f.teacher(c) for _ in range(4)]
    parents = [f.parent(c) for _ in range(LOAD)]
    killed = threading.Event()
    unpaid: list[str] = []  # checkout URLs booked but left unpaid before the kill

    def one(i):
        """Book, then pay two times out of three; connection errors while the server is dead are expected."""
        try:
            r = f.book(parents[i], teachers[i % 4], starts_at=f.slot(days=2 + i // 4, hour=9 + i % 8))
            if r.status_code == 201 and i % 3:
                pay.pay(r.json()["data"]["checkoutUrl"])
            elif r.status_code == 201:
                unpaid.append(r.json()["data"]["checkoutUrl"])
        except httpx.HTTPError:
            pass

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, i) for i in range(LOAD)]
        time.sleep(0.5)
        while sum(fu.done() for fu in futures) < LOAD // 2:
            time.sleep(0.05)
        app.kill()
        killed.set()
        for fu in futures:
            fu.result()
    assert killed.is_set() and unpaid
    for checkout_url in unpaid:  # parents still pay on Stripe while the server is down
        assert pay.pay(checkout_url).status_code == 303
    deliveries = http_get(f"{sandbox.base_url}/_sandbox/deliveries").json()["data"]
    assert any(not d["delivered"] or d["attempts"] > 1 for d in deliveries), "no webhook hit the dead server"

    app = AppProcess(env=env, port=port, log_dir=tmp_path).start()  # same address: the sandbox redelivers
    try:
        http_post(f"{sandbox.base_url}/_sandbox/deliveries/redeliver").raise_for_status()
        wait_for(
            lambda: all(d["delivered"] for d in http_get(f"{sandbox.base_url}/_sandbox/deliveries").json()["data"]),
            timeout=60,
            message="every webhook delivered",
        )
        settings = make_settings(url, tmp_path / "var", sandbox_url=sandbox.base_url)
        db = Database(url)
        svc = build_services(settings, db)
        later = utc_now() + timedelta(minutes=32)  # one interval after every checkout expired
        jobs.run_all(svc, now=later)

        sb = http_client(base_url=sandbox.base_url, headers={"Authorization": "Bearer sk_test_sandbox"})
        with db.session_scope() as s:
            rows = {str(b.id): b for b in s.scalars(sa.select(Booking))}
            refunded = set(str(r.session_id) for r in s.scalars(sa.select(Refund)))
        assert rows, "the load made no bookings"
        lost = []
        for b in rows.values():
            if not b.stripe_session_id:
                continue
            cs = sb.get(f"/v1/checkout/sessions/{b.stripe_session_id}").json()
            if cs["payment_status"] == "paid" and not (b.status in (1, 2) or str(b.id) in refunded):
                lost.append(b.id)
        assert lost == [], f"payments without a booking or a refund: {lost}"
        stuck = [b.id for b in rows.values() if b.status == 0 and b.checkout_expires_at <= later]
        assert stuck == []
        report = jobs.run("reconcile", svc, now=later, dry_run=True)
        assert report.mismatches == []
        db.dispose()
    finally:
        app.stop()
