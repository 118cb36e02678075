"""Running the sandbox: blocking (CLI) or in a background thread (tests, dev servers)."""

from __future__ import annotations

import dataclasses
import http.client
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from .app import create_app
from .config import SandboxConfig

GRACEFUL_SHUTDOWN_S = 2


@dataclass
class SandboxHandle:
    """A sandbox server running in a daemon thread."""

    base_url: str
    config: SandboxConfig
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def start_in_thread(
    config: SandboxConfig, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 15.0
) -> SandboxHandle:
    """Start the sandbox on host:port (0 = a free port) and wait until it answers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    base_url = _url(host, sock.getsockname()[1])
    if config.public_url is None:
        config = dataclasses.replace(config, public_url=base_url)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"stripe-sandbox-{base_url}",
        daemon=True,
    )
    thread.start()
    handle = SandboxHandle(base_url, config, server, thread, sock)
    _wait_until_up(handle, startup_timeout)
    return handle


def _wait_until_up(handle: SandboxHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not handle.thread.is_alive():
            raise RuntimeError("the Stripe sandbox server failed to start")
        if handle.server.started and _answers(handle):
            return
        time.sleep(0.01)
    handle.stop()
    raise RuntimeError(f"the Stripe sandbox did not answer at {handle.base_url}")


def _answers(handle: SandboxHandle) -> bool:
    host, port = handle.sock.getsockname()[:2]
    conn = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        conn.request("GET", "/_sandbox/clock")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def run(config: SandboxConfig, host: str = "127.0.0.1", port: int = 12111) -> None:
    """Serve the sandbox in the foreground until interrupted."""
    if config.public_url is None and host not in ("0.0.0.0", "::"):
        config = dataclasses.replace(config, public_url=_url(host, port))
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
