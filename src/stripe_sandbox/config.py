"""Settings of the Stripe-compatible sandbox server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

FAIL_MODES = (None, "error500", "hang", "refuse")


@dataclass
class SandboxConfig:
    """Everything the sandbox needs; every field has a development default."""

    api_key: str = "sk_test_sandbox"
    db_path: str = "var/stripe-sandbox.sqlite3"
    # Base URL where browsers reach the sandbox; None = derive it from each request.
    public_url: str | None = None
    # The platform's webhook endpoint (events of the platform's own objects) ...
    webhook_url: str | None = None
    webhook_secret: str = "whsec_sandbox_secret"
    # ... and the Connect endpoint (events of connected accounts: they carry `account`), each
    # signed with its own secret. More can be made with POST /v1/webhook_endpoints.
    connect_webhook_url: str | None = None
    connect_webhook_secret: str = "whsec_sandbox_connect_secret"
    # The platform's own account (GET /v1/account) and whether it has signed up for Connect.
    platform_country: str = "US"
    connect_enabled: bool = True
    latency_ms: int = 0
    substitute_cancel_url: bool = False
    deliver_webhooks: bool = True
    retry_schedule_s: Sequence[float] = field(default=(1, 2, 5, 10, 30, 60))
    expiry_check_interval_s: float = 1.0
    # Like Checkout, wait (at most this long) for the first attempt to deliver
    # checkout.session.completed before redirecting the payer to success_url.
    redirect_wait_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # None, "error500" (every /v1 call answers 500 api_error) or "hang" (waits 30 s
    # first, or until fail_mode changes) — to simulate Stripe being down or slow.
    fail_mode: str | None = None
    # The API version of the webhook endpoint: events are rendered in it (None = the pinned
    # SDK's), whatever version the request that caused them asked for.
    webhook_api_version: str | None = None
    # Versions accepted besides the pinned SDK's (answered in its shape); see versions.py.
    extra_api_versions: Sequence[str] = ()

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the given number of failed attempts."""
        schedule = list(self.retry_schedule_s) or [60]
        return float(schedule[min(max(attempts, 1), len(schedule)) - 1])
