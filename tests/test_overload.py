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
