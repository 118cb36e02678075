"""Fixtures: real sandbox servers on 127.0.0.1, the real stripe SDK, a webhook receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe

from stripe_sandbox import SandboxConfig, SandboxHandle, start_in_thread

from .helpers import API_KEY, WEBHOOK_SECRET, Receiver, make_client


@pytest.fixture
def make_sandbox(tmp_path) -> Iterator[Callable[..., SandboxHandle]]:
    """Start sandboxes sharing one SQLite file; all are stopped afterwards."""
    handles: list[SandboxHandle] = []

    def start(**overrides: Any) -> SandboxHandle:
        settings: dict[str, Any] = {
            "api_key": API_KEY,
            "db_path": str(tmp_path / "sandbox.sqlite3"),
            "webhook_secret": WEBHOOK_SECRET,
            "retry_schedule_s": (0.05, 0.1, 0.2),
            "expiry_check_interval_s": 0.05,
            "redirect_wait_s": 2.0,
        }
        settings.update(overrides)
        handle = start_in_thread(SandboxConfig(**settings))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def sandbox(make_sandbox) -> SandboxHandle:
    """A running sandbox without a webhook endpoint."""
    return make_sandbox()


@pytest.fixture
def client(sandbox) -> stripe.StripeClient:
    """The real stripe SDK pointed at ``sandbox``."""
    return make_client(sandbox.base_url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running webhook receiver that fails each event's first attempt."""
    rec = Receiver()
    yield rec
    rec.close()
