"""SIGTERM to `tutorbook serve`: it stops accepting, the request in flight (held up by a lock the
test keeps on the users table) still completes, and the process exits 0."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.support.processes import app_env
from tests.support.servers import free_port, http_get, wait_for


def _hold_users_table(db):
    """A lock that makes an INSERT INTO users wait; returns its release function."""
    if db.is_sqlite:
        conn = sqlite3.connect(db.engine.url.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the one writer: the app's INSERT waits (busy_timeout)

        def release():
            conn.execute("ROLLBACK")
            conn.close()

        return release
    conn = db.engine.connect()
    tx = conn.begin()
    conn.execute(sa.text("LOCK TABLE users IN EXCLUSIVE MODE"))  # reads go on, writes wait

    def release():
        tx.rollback()
        conn.close()

    return release


def _alive(url):
    try:
        return http_get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _serve(api, sandbox, tmp_path, *, grace: int, drain: float = 0):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = app_env(
        database_url=api.state.db.url,
        sandbox_url=sandbox.base_url,
        var_dir=tmp_path,
        sandbox_enabled="false",
        shutdown_grace_seconds=grace,
        shutdown_drain_seconds=drain,
        log_level="INFO",
    )
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tutorbook.cli", "serve", "--port", str(port), "--no-jobs"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _alive(base + "/health/live"), timeout=30, message="serve to start")
    except BaseException:
        proc.kill()
        raise
    return proc, base


def _register_in_thread(base: str):
    answer: dict = {}

    def register():
        body = {"email": "late@example.com", "password": "long-enough-pw-9x!", "fullName": "Late", "role": "Parent"}
        try:
            answer["r"] = httpx.post(base + "/api/Auth/register", json=body, timeout=30)
        except httpx.HTTPError as exc:
            answer["error"] = exc

    thread = threading.Thread(target=register)
    thread.start()
    return thread, answer


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(api, sandbox, tmp_path):
    proc, base = _serve(api, sandbox, tmp_path, grace=20)
    release = None
    try:
        release = _hold_users_table(api.state.db)
        thread, answer = _register_in_thread(base)
        time.sleep(1.5)  # the request is in, waiting for the lock
        assert thread.is_alive()
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None  # still finishing the request
        with pytest.raises(httpx.ConnectError):  # but taking no new connection
            httpx.get(base + "/health/live", timeout=2)
        release()
        release = None
        thread.join(30)
        assert answer["r"].status_code == 201, answer["r"].text
        assert answer["r"].json()["success"] is True
        assert proc.wait(20) == 0
    finally:
        if release is not None:
            release()
        if proc.poll() is None:
            proc.kill()
    with api.state.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users WHERE email = 'late@example.com'")).scalar() == 1


def test_the_grace_bounds_the_wait_for_a_request_that_does_not_finish(api, sandbox, tmp_path):
    """TUTORBOOK_SHUTDOWN_GRACE_SECONDS: a request still stuck after it does not keep the process."""
    proc, base = _serve(api, sandbox, tmp_path, grace=2)
    release = _hold_users_table(api.state.db)
    try:
        thread, _answer = _register_in_thread(base)
        time.sleep(1.5)
        assert thread.is_alive()
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)  # while the lock is still held
        assert time.monotonic() - stopped_at < 10
    finally:
        release()
        if proc.poll() is None:
            proc.kill()
    thread.join(30)


def test_with_a_drain_sigterm_first_fails_readiness_while_everything_is_still_answered(api, sandbox, tmp_path):
    """TUTORBOOK_SHUTDOWN_DRAIN_SECONDS (issue #31): a replica takes itself out of the balancer's
    rotation. After SIGTERM, /health/ready answers 503 while /health/live and real requests still
    get their answers on new connections; after the drain it stops accepting and exits 0."""
    proc, base = _serve(api, sandbox, tmp_path, grace=5, drain=4)
    try:
        assert http_get(base + "/health/ready", timeout=5).status_code == 200
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: http_get(base + "/health/ready", timeout=2).status_code == 503, timeout=3, message="draining")
        ready = http_get(base + "/health/ready", timeout=2)
        assert ready.json() == {"success": False, "message": "Draining: this replica is shutting down", "data": None}
        assert http_get(base + "/health/live", timeout=2).status_code == 200
        body = {"email": "draining@example.com", "password": "long-enough-pw-9x!", "fullName": "D", "role": "Parent"}
        registered = httpx.post(base + "/api/Auth/register", json=body, timeout=10)
        assert registered.status_code == 201, registered.text
        assert proc.poll() is None
        assert proc.wait(20) == 0
        assert time.monotonic() - stopped_at >= 4
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/health/live", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_second_sigterm_ends_the_drain_at_once(api, sandbox, tmp_path):
    proc, base = _serve(api, sandbox, tmp_path, grace=5, drain=60)
    try:
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: http_get(base + "/health/ready", timeout=2).status_code == 503, timeout=3, message="draining")
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - stopped_at < 10
    finally:
        if proc.poll() is None:
            proc.kill()
