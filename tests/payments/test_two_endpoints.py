"""Two webhook endpoints (issue 26): the platform's events at /api/StripeWebhook/webhook, the
events of connected accounts at /api/StripeWebhook/connect, each verified with its own secret and
handled alike; the sandbox delivers each kind only to its endpoint."""

from __future__ import annotations

import uuid

import pytest

from tests import factories as f
from tests.connect.helpers import onboard, stripe_get
from tests.support import payments as pay
from tests.support import webhooks as wh
from tests.support.servers import http_get, wait_for
from tutorbook.config import Settings
from tutorbook.payments import gateway as gw
from tutorbook.teachers import payouts


def test_a_connect_event_at_the_connect_endpoint_is_handled(api, c, sandbox):
    t = f.teacher(c)
    status = onboard(t, choice="later")
    pay.sandbox_config(sandbox, deliver_webhooks=False)
    account = stripe_get(sandbox, f"/v1/accounts/{status['accountId']}")
    due = dict(account["requirements"], currently_due=[])
    event = wh.event("account.updated", dict(account, payouts_enabled=True, requirements=due))
    event["account"], event["created"] = status["accountId"], 4_070_908_800  # 2099: newer than any state held
    r = wh.post(api.state.base_url, event, connect=True)
    assert r.status_code == 200 and r.json()["data"] == "account_updated", r.text
    with api.state.db.session_scope() as s:
        assert payouts.status(s, teacher_id=uuid.UUID(t["user"]["id"])).payouts_enabled is True


@pytest.mark.parametrize(
    "connect,secret",
    [(True, wh.SECRET), (False, wh.CONNECT_SECRET), (True, "whsec_attacker")],
    ids=["platform-secret-at-connect", "connect-secret-at-platform", "attacker-at-connect"],
)
def test_each_endpoint_accepts_only_its_own_secret(api, c, connect, secret):
    event = wh.event("account.updated", {"id": "acct_x", "object": "account", "payouts_enabled": True})
    r = wh.post(api.state.base_url, event, connect=connect, secret=secret)
    assert r.status_code == 400 and r.json()["success"] is False, r.text


def test_the_sandbox_delivers_connect_events_to_the_connect_endpoint(api, c, sandbox):
    t = f.teacher(c)
    status = onboard(t, choice="later")

    def delivered():
        rows = http_get(f"{sandbox.base_url}/_sandbox/deliveries").json()["data"]
        return [d for d in rows if d["type"] == "account.updated" and d["delivered"]]

    rows = wait_for(delivered, message="account.updated delivered")
    assert {d["endpoint_id"] for d in rows} == {"we_sandboxConnectEndpoint"}
    assert all(d["last_status"] == 200 for d in rows)
    assert status["accountId"]


def test_without_a_connect_secret_the_connect_endpoint_refuses_everything():
    gateway = gw.StripeGateway(Settings(stripe_secret_key="sk_test_x", stripe_webhook_secret="whsec_x"))
    payload = b'{"id": "evt_1", "type": "account.updated"}'
    with pytest.raises(gw.InvalidWebhook):
        gateway.construct_event(payload, wh.signature(payload, secret=""), connect=True)
    assert gateway.construct_event(payload, wh.signature(payload, secret="whsec_x"))["id"] == "evt_1"
