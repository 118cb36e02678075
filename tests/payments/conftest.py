"""Fixtures of the gateway tests (test_gateway_later.py, test_gateway_sessions.py): our gateway
and the official SDK, both pointed at the session's Stripe sandbox."""

from __future__ import annotations

import pytest
import stripe

from tests.support import payments as pay
from tutorbook.config import Settings
from tutorbook.payments import gateway as gw


@pytest.fixture
def gateway(sandbox):
    g = gw.StripeGateway(
        Settings(sandbox_url=sandbox.base_url, stripe_webhook_secret="whsec_x", stripe_connect_webhook_secret="whsec_y")
    )
    pay.sandbox_config(sandbox, deliver_webhooks=False, fail_mode=None, connect_enabled=True)
    return g


@pytest.fixture
def sdk(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_sandbox",
        base_addresses={"api": sandbox.base_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )
