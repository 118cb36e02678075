"""Run an ASGI app with uvicorn on a free 127.0.0.1 port in a daemon thread."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadedServer:
    def __init__(self, app, *, port: int | None = None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=2,
            proxy_headers=False,  # as `tutorbook serve`: the app's TUTORBOOK_TRUSTED_PROXIES decide
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, health_path: str = "/health") -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def wait_for(predicate, *, timeout: float = 10, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


# The tests speak plain HTTP to 127.0.0.1, yet every new httpx.Client loads the CA bundle into a
# fresh TLS context (about 20 ms): a fifth of the model-based test's time. One context serves all.
_TLS = ssl.create_default_context()


def http_client(**kwargs) -> httpx.Client:
    """httpx.Client(**kwargs) with the shared TLS context."""
    return httpx.Client(verify=_TLS, **{"timeout": 30, **kwargs})


def http_post(url: str, **kwargs) -> httpx.Response:
    """httpx.post on a fresh client (no shared cookies) without the cost of a new TLS context."""
    with http_client(timeout=kwargs.pop("timeout", 30)) as c:
        return c.post(url, **kwargs)


def http_get(url: str, **kwargs) -> httpx.Response:
    with http_client(timeout=kwargs.pop("timeout", 30)) as c:
        return c.get(url, **kwargs)


def client(base_url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http_client(base_url=base_url, headers=headers)
