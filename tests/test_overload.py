"""Overload is never a 500 (issue #33): a request waits a bounded, configured time for a database
connection, a worker thread or a place among the requests in flight, then gets a 503 with
Retry-After and the envelope."""

import asyncio
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import make_settings
from tests.support.servers import ThreadedServer
from tutorbook.api.deps import ServicesDep
from tutorbook.app import create_app
from tutorbook.db import Database
from tutorbook.db.doors import cpu_bound
from tutorbook.errors import ServiceUnavailable
from tutorbook.schemas import Envelope, ok


def _slow_sync(session):
    value = session.execute(sa.text("SELECT 1")).scalar_one()
    time.sleep(0.05)
    return value


_SLOW_SYNC = cpu_bound(_slow_sync)  # on a worker thread, behind the write door's sync slot


def _server(url, tmp_path, sandbox, *, pool_size=2, **overrides):
    """The app on a real port, its own small pool, plus a route whose transaction holds its
    connection for 50 ms on a worker thread (as a slow sync read would)."""
    db = Database(url, pool_size=pool_size, pool_timeout=0.5)
    settings = make_settings(url, tmp_path, sandbox_url=sandbox.base_url, db_pool_timeout_seconds=0.5, **overrides)
    app = create_app(settings, db=db)

    @app.get("/__slow-sync", response_model=Envelope[int])
    async def slow_sync(svc: ServicesDep):
        return ok(await svc.tx(_SLOW_SYNC))

    @app.get("/__slow-async", response_model=Envelope[int])
    async def slow_async():
        await asyncio.sleep(0.2)
        return ok(1)

    return ThreadedServer(app).start(), db


async def _many(base_url: str, path: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        return await asyncio.gather(*(client.get(path) for _ in range(n)))


def _assert_busy(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    assert r.json() == {"success": False, "message": "The service is busy; try again in a moment", "data": None}


def test_a_crowd_on_a_sync_route_with_a_small_pool_gets_answers_or_503s_never_a_500(db, sandbox, tmp_path):
    # Before the fix (issue #33) a sync route's session dependency, the route and the answer's
    # validation each waited for one of anyio's threads while holding (or waiting for) one of the
    # pool's 2 connections: the threads all waited for connections, the holders for threads, and
    # the pool's timeout was a 500. Now the write door's thread path waits for a place first.
    server, small = _server(db.url, tmp_path, sandbox, worker_threads=4, max_requests_in_flight=1000)
    try:
        answers = asyncio.run(_many(server.base_url, "/__slow-sync", 60))
    finally:
        server.stop()
        small.dispose()
    statuses = sorted({r.status_code for r in answers})
    assert 500 not in statuses
    assert set(statuses) <= {200, 503}, statuses
    ok_count = sum(r.status_code == 200 for r in answers)
    # The pool kept answering (at least its 2 connections' worth; how many more fit in the 0.5 s
    # wait depends on the machine's load, which a test must not assert).
    assert ok_count >= 2
    for r in answers:
        if r.status_code == 503:
            _assert_busy(r)
    assert any(r.status_code == 503 for r in answers)  # 60 x 50 ms / 2 connections > the 0.5 s wait


def test_requests_past_the_in_flight_limit_and_its_queue_are_refused_at_once(db, sandbox, tmp_path):
    server, small = _server(
        db.url, tmp_path, sandbox, max_requests_in_flight=5, admission_queue=5, admission_wait_seconds=10
    )
    try:
        started = time.monotonic()
        answers = asyncio.run(_many(server.base_url, "/__slow-async", 30))
        took = time.monotonic() - started
        health = httpx.get(server.base_url + "/health", timeout=5)
    finally:
        server.stop()
        small.dispose()
    ok_count = sum(r.status_code == 200 for r in answers)
    refused = [r for r in answers if r.status_code != 200]
    assert ok_count == 10  # 5 in flight, 5 waited their turn (0.2 s each, within the 10 s wait)
    assert len(refused) == 20
    for r in refused:
        _assert_busy(r)
        assert r.headers["X-Request-ID"]
    # The refused did not wait: a refusal after the wait would take 10 s. (Not "under 2 s": 30
    # connections and 0.4 s of answers took up to 3.7 s on a machine shared with other suites.)
    assert took < 8
    assert health.status_code == 200


def test_a_wait_for_a_place_that_runs_out_is_a_503(db, sandbox, tmp_path):
    server, small = _server(
        db.url, tmp_path, sandbox, max_requests_in_flight=2, admission_queue=100, admission_wait_seconds=0.05
    )
    try:
        answers = asyncio.run(_many(server.base_url, "/__slow-async", 10))
    finally:
        server.stop()
        small.dispose()
    assert sum(r.status_code == 200 for r in answers) == 2
    for r in answers:
        if r.status_code != 200:
            _assert_busy(r)


@pytest.mark.parametrize("value", ["1,2", "a,b,c", "1,2,3,4"])
def test_gc_thresholds_must_be_three_whole_numbers(value, tmp_path, monkeypatch):
    from tutorbook.config import Settings

    monkeypatch.setenv("TUTORBOOK_GC_THRESHOLDS", value)
    with pytest.raises(ValueError, match="GC_THRESHOLDS"):
        Settings()


def test_gc_thresholds_are_read_from_the_environment(monkeypatch):
    from tutorbook.config import Settings

    monkeypatch.setenv("TUTORBOOK_GC_THRESHOLDS", "1000, 15,30")
    assert Settings().gc_thresholds == (1000, 15, 30)


def _place(db: Database):
    """What a request waits in for the database: one of the asyncio engine's connections
    (PostgreSQL), or a place on the thread path (SQLite: its connections are taken on a thread)."""
    return db.async_connection() if db.is_async else db.sync_slot()


def test_a_request_waiting_for_a_connection_is_served_before_later_ones(db):
    # Issue #33's 503s under a crowd: the asyncio pool's wait was not first come, first served.
    # A connection given back woke the longest waiter, but a request that became ready to ask
    # before that waiter ran (under a crowd, many do) took it, and the waiter queued again at
    # the back. Here, as the connection is given back, three more requests arrive; the one that
    # was already waiting must be served first, then they in their order.
    small = Database(db.url, pool_size=1, pool_timeout=5)
    served: list[str] = []

    async def scenario() -> None:
        async def take(name: str, *, after_steps: int = 0, then: bool = False, hold_s: float = 0.02) -> None:
            for _ in range(after_steps):
                await asyncio.sleep(0)  # ready to ask this many turns of the loop later
            async with _place(small):
                served.append(name)
                await asyncio.sleep(hold_s)
                if then:  # three requests arrive as this one gives its connection back
                    arrivals.extend(asyncio.create_task(take(f"late{k}", after_steps=k)) for k in range(3))

        arrivals: list[asyncio.Task[None]] = []
        first = asyncio.create_task(take("first", then=True, hold_s=0.1))
        await asyncio.sleep(0.05)  # "first" holds the connection
        waiting = asyncio.create_task(take("waiting"))
        try:
            await asyncio.gather(first, waiting)
            await asyncio.gather(*arrivals)
        finally:
            await small.dispose_async()

    try:
        asyncio.run(scenario())
    finally:
        small.dispose()
    # main: ["first", "late1", "late0", "waiting", "late2"]
    assert served == ["first", "waiting", "late0", "late1", "late2"]


def test_a_wait_for_a_connection_that_runs_out_is_a_503_naming_that_wait(db):
    small = Database(db.url, pool_size=1, pool_timeout=0.2)

    async def scenario() -> ServiceUnavailable:
        async def hold() -> None:
            async with _place(small):
                await asyncio.sleep(1)

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.05)
        try:
            with pytest.raises(ServiceUnavailable) as refused:
                async with _place(small):
                    pass
            return refused.value
        finally:
            await holder
            await small.dispose_async()

    try:
        refusal = asyncio.run(scenario())
    finally:
        small.dispose()
    assert refusal.status_code == 503
    assert refusal.cause == ("db_async_slot" if small.is_async else "db_sync_slot")


def test_each_refusal_is_counted_by_the_wait_that_gave_it(db, sandbox, tmp_path, caplog):
    server, small = _server(
        db.url, tmp_path, sandbox, max_requests_in_flight=2, admission_queue=3, admission_wait_seconds=0.05
    )
    try:
        with caplog.at_level("WARNING", logger="tutorbook.http"):
            answers = asyncio.run(_many(server.base_url, "/__slow-async", 10))
        metrics = server.server.config.app.state.metrics
    finally:
        server.stop()
        small.dispose()
    refused = [r for r in answers if r.status_code == 503]
    # 2 in flight; 3 queued, whose 50 ms wait runs out before a 200 ms answer frees a place; 5 past the queue
    assert sum(r.status_code == 200 for r in answers) == 2 and len(refused) == 8
    assert metrics.value("tutorbook_http_busy_refusals_total", cause="admission_wait") == 3
    assert metrics.value("tutorbook_http_busy_refusals_total", cause="admission_queue_full") == 5
    logged = [r.cause for r in caplog.records if r.getMessage() == "busy: refused"]
    assert sorted(logged) == ["admission_queue_full"] * 5 + ["admission_wait"] * 3
