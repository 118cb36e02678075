"""Request size and time limits: a body over TUTORBOOK_MAX_BODY_BYTES is a 413 before it is
read (the envelope for the API, an error page for a browser's form), and a connection whose
request head does not arrive in time is closed."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI

from tests.support.servers import free_port, wait_for
from tests.web.helpers import WebClient, assert_clean
from tutorbook.http_server import HeaderTimeoutProtocol


def raw_request(port: int, head: bytes, body_parts=(), *, timeout: float = 10) -> bytes:
    """Send a request head and then body parts (stopping when the server stops reading); the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except OSError:
            pass  # the server answered and closed without reading the rest: what we want
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
        return answer


def test_a_100_mb_json_body_to_the_anonymous_login_is_413_before_it_is_read(api):
    port = int(api.state.base_url.rsplit(":", 1)[1])
    head = (
        b"POST /api/Auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 104857600\r\n\r\n"
    )
    started = time.monotonic()
    answer = raw_request(port, head, [b'{"email": "' + b"a" * 65536])  # 64 KiB of the 100 MB ever sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"success":false' in answer and b"too large" in answer
    assert b"x-content-type-options: nosniff" in answer.lower()
    assert time.monotonic() - started < 5


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(api):
    port = int(api.state.base_url.rsplit(":", 1)[1])
    head = (
        b"POST /api/Auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 65536
    parts = [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * 40  # 2.5 MiB, more than the 1 MiB default
    answer = raw_request(port, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_form_field_over_a_megabyte_is_a_clear_413_page_not_a_500(api):
    web = WebClient(api.state.base_url)
    try:
        r = web.post("/login", {"email": "x" * (1024 * 1024 + 10), "password": "whatever-long"})
        assert r.status_code == 413, r.status_code
        assert_clean(r)
        r = web.post("/register", {"fullName": "y" * (2 * 1024 * 1024), "email": "a@example.com"})
        assert r.status_code == 413
    finally:
        web.close()


def test_a_body_within_the_limit_still_works(api, c):
    r = c.post("/api/Auth/login", json={"email": "nobody@example.com", "password": "p" * 200_000})
    assert r.status_code in (401, 422)  # read and judged, not refused for its size


class QuickHeads(HeaderTimeoutProtocol):
    timeout = 0.5


@pytest.fixture
def quick_server():
    """A bare app served with the protocol `tutorbook serve` uses (a 0.5 s head deadline); its port."""
    app = FastAPI()

    @app.get("/ok")
    def ok():
        return {"ok": True}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, http=QuickHeads, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, message="server")
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(3)
    try:
        while chunk := sock.recv(65536):
            if b"431" in chunk:
                return True
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_a_whole_request_in_time_is_answered_and_the_connection_kept(quick_server):
    with socket.create_connection(("127.0.0.1", quick_server), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)  # idle, within the deadline


def test_a_connection_that_sends_its_headers_too_slowly_is_closed(quick_server):
    with socket.create_connection(("127.0.0.1", quick_server), timeout=5) as sock:
        started = time.monotonic()
        closed = False
        for byte in b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
            except OSError:
                closed = True
                break
            if time.monotonic() - started > 3:
                break
        assert (closed or closed_by_server(sock)) and time.monotonic() - started < 4


def test_a_request_head_over_64_kib_is_refused(quick_server):
    with socket.create_connection(("127.0.0.1", quick_server), timeout=5) as sock:
        try:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
        except OSError:
            return  # cut off while sending: refused
        answer = b""
        try:
            answer = sock.recv(200)
        except OSError:
            return
        assert not answer.startswith(b"HTTP/1.1 200"), answer
