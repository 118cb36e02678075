"""When a 5xx does happen: the answer carries X-Request-ID, the log has one error line with that
id and the traceback once, and the keep-alive connection stays usable."""

import http.client
import json
import logging

import pytest
from fastapi import BackgroundTasks

from tests.conftest import make_settings
from tests.support.servers import ThreadedServer
from tutorbook.app import create_app
from tutorbook.logs import JsonFormatter, RequestIdFilter


class Lines(logging.Handler):
    """The JSON log lines the app would write, kept in memory."""

    def __init__(self):
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def failing_server(db, sandbox, tmp_path):
    """A fresh app with two extra routes that raise, on a real port."""
    settings = make_settings(db.url, tmp_path, sandbox_url=sandbox.base_url)
    app = create_app(settings, db=db)

    @app.get("/__boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/__boom-later")
    def boom_later(background: BackgroundTasks):
        background.add_task(_fail_after_answering)
        return {"success": True, "message": "OK", "data": None}

    server = ThreadedServer(app).start()
    yield server
    server.stop()


def _fail_after_answering():
    raise RuntimeError("background task failed")


@pytest.fixture
def log_lines():
    handler, root = Lines(), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response, response.read()


def test_a_crash_is_one_logged_500_with_its_request_id_on_a_connection_that_stays_open(failing_server, log_lines):
    conn = http.client.HTTPConnection("127.0.0.1", failing_server.port, timeout=10)
    try:
        r, body = _get(conn, "/__boom")
        sock = conn.sock
        assert r.status == 500
        assert json.loads(body) == {"success": False, "message": "Internal server error", "data": None}
        rid = r.getheader("X-Request-ID")
        assert rid and r.getheader("connection", "").lower() != "close"
        assert r.getheader("X-Content-Type-Options") == "nosniff"  # made outside the routes, still secured

        # The same socket serves the next request (http.client would reconnect if it had been closed).
        r2, _ = _get(conn, "/health")
        assert r2.status == 200 and conn.sock is sock and sock is not None
    finally:
        conn.close()

    errors = [line for line in log_lines if line["level"] in ("error", "critical")]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == rid and errors[0]["msg"] == "unhandled error"
    assert errors[0]["exc"].count("Traceback") == 1 and "secret internals" in errors[0]["exc"]
    assert sum("Traceback" in json.dumps(line) for line in log_lines) == 1


def test_a_background_task_that_fails_after_the_answer_is_logged_once_and_keeps_the_connection(
    failing_server, log_lines
):
    conn = http.client.HTTPConnection("127.0.0.1", failing_server.port, timeout=10)
    try:
        r, _ = _get(conn, "/__boom-later")
        sock, rid = conn.sock, r.getheader("X-Request-ID")
        assert r.status == 200
        r2, _ = _get(conn, "/health")
        assert r2.status == 200 and conn.sock is sock
    finally:
        conn.close()
    errors = [line for line in log_lines if line["level"] == "error"]
    assert [(e["request_id"], "background task failed" in e["exc"]) for e in errors] == [(rid, True)]
