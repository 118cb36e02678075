"""The async database path (issue #18): on PostgreSQL a use case run from async code stays on the
event loop's thread (asyncpg through SQLAlchemy's asyncio engine); on SQLite it runs on a worker
thread. One-statement use cases run without BEGIN/COMMIT; a dead pooled connection costs one 503."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa

from tests import factories as f
from tests.conftest import PG_ADMIN_URL
from tutorbook.db import Database, async_url
from tutorbook.db.doors import one_statement


def _thread(_session) -> int:
    return threading.get_ident()


def test_a_use_case_runs_on_the_event_loop_thread_on_postgresql_and_on_a_worker_thread_on_sqlite(api):
    svc = api.state.services

    async def where() -> tuple[int, int]:
        return threading.get_ident(), await svc.tx(_thread)

    loop_thread, ran_on = asyncio.run(where())
    if svc.db.is_sqlite:
        assert not svc.db.is_async
        assert ran_on != loop_thread
    else:
        assert svc.db.is_async
        assert ran_on == loop_thread


def _two_transaction_ids(session) -> tuple[int, int]:
    first = session.execute(sa.text("SELECT txid_current()")).scalar()
    second = session.execute(sa.text("SELECT txid_current()")).scalar()
    return first, second


def test_a_statement_scope_runs_each_statement_as_its_own_transaction_and_tx_runs_one(database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's transaction ids")
    db = Database(database_url, pool_size=2)
    from tutorbook.config import Settings
    from tutorbook.flows.services import build_services

    svc = build_services(Settings(database_url=database_url, jwt_secret="x" * 40).resolved(), db)

    async def both():
        try:
            return await svc.tx(one_statement(_two_transaction_ids)), await svc.tx(_two_transaction_ids)
        finally:
            await db.dispose_async()

    (a1, a2), (t1, t2) = asyncio.run(both())
    assert a1 != a2, "autocommit: each statement is a transaction of its own"
    assert t1 == t2, "tx: one transaction"
    db.dispose()


def test_the_asyncpg_url_keeps_the_server_and_translates_libpq_options():
    url, connect_args = async_url("postgresql+psycopg://u:p@db.example:6432/app?sslmode=require&application_name=tb")
    assert url == "postgresql+asyncpg://u:p@db.example:6432/app?ssl=require"
    assert connect_args == {"server_settings": {"application_name": "tb"}}
    assert async_url("sqlite:///x.db") is None


def test_a_dead_pooled_connection_answers_503_once_then_the_pool_recovers(api, c):
    if api.state.services.db.is_sqlite:
        pytest.skip("PostgreSQL connections")
    p = f.parent(c)
    assert p["client"].get("/api/Students").status_code == 200  # the async pool holds a connection now
    dbname = sa.engine.make_url(api.state.services.db.url).database
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :d"),
            {"d": dbname},
        ).scalar()
    admin.dispose()
    assert killed >= 1
    answers = [p["client"].get("/api/Students") for _ in range(3)]
    codes = [r.status_code for r in answers]
    assert codes == [503, 200, 200], codes  # no pre-ping: the dead connection is found by using it
    body = answers[0].json()
    assert body["success"] is False and "try again" in body["message"]


def test_a_paid_checkout_event_confirms_the_booking_with_its_jitsi_link_in_one_transaction(api, c):
    """Jitsi calls no one to make a link: the webhook's transaction writes it with the
    confirmation, so no follow-up (and no second and third transaction) is left to make it."""
    import uuid

    from tutorbook.bookings.models import Booking
    from tutorbook.flows import stripe_events

    t, p = f.teacher(c), f.parent(c)
    b = f.book(p, t).json()["data"]
    event = {
        "id": "evt_test_" + uuid.uuid4().hex[:16],
        "type": "checkout.session.completed",
        "created": 1,
        "data": {
            "object": {
                "id": b["stripeSessionId"],
                "object": "checkout.session",
                "status": "complete",
                "payment_status": "paid",
                "amount_total": b["priceAmount"],
                "currency": b["currency"],
                "client_reference_id": b["id"],
                "metadata": {"booking_id": b["id"], "type": "session-booking"},
                "payment_intent": "pi_test_" + uuid.uuid4().hex[:16],
            }
        },
    }
    svc = api.state.services
    outcome = asyncio.run(stripe_events.receive(svc, event))
    assert outcome.kind == "confirmed"
    assert outcome.followups.links == []
    with svc.db.session_scope() as s:
        booking = s.get(Booking, uuid.UUID(b["id"]))
        assert booking.status == 1
        assert booking.meeting_provider == "jitsi" and booking.meeting_url.startswith("https://")
