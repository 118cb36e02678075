"""Tutorbook app servers as separate OS processes (replicas sharing one database)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port, http_get

METRICS_TOKEN = "test-metrics-token-" + "m" * 24  # TUTORBOOK_METRICS_TOKEN of every test app


class AppProcess:
    def __init__(self, *, env: dict, port: int | None = None, log_dir: Path):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "TUTORBOOK_PUBLIC_URL": self.base_url}
        self.log_path = log_dir / f"app-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> AppProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tutorbook.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited: {self.log_path.read_text()[-3000:]}")
            try:
                if http_get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("app did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def app_env(*, database_url: str, sandbox_url: str, **extra) -> dict:
    env = {
        "TUTORBOOK_DATABASE_URL": database_url,
        "TUTORBOOK_SANDBOX_URL": sandbox_url,
        "TUTORBOOK_JWT_SECRET": "test-secret-" + "x" * 32,
        "TUTORBOOK_STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
        "TUTORBOOK_ARGON2_TIME_COST": "1",
        "TUTORBOOK_ARGON2_MEMORY_KIB": "1024",
        "TUTORBOOK_ARGON2_PARALLELISM": "1",
        "TUTORBOOK_JOBS_ENABLED": "false",
        "TUTORBOOK_LOG_LEVEL": "WARNING",
        "TUTORBOOK_STRIPE_MAX_NETWORK_RETRIES": "0",
        "TUTORBOOK_METRICS_TOKEN": METRICS_TOKEN,
    }
    env.update({f"TUTORBOOK_{k.upper()}": str(v) for k, v in extra.items()})
    return env
