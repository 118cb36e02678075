"""`tutorbook stripe check`: against the sandbox as the tests run it, all good (exit 0); each item
broken in turn is named, with what to run or click (exit 1)."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import sqlalchemy as sa
import stripe
from typer.testing import CliRunner

from tests import factories as f
from tests.support import payments as pay
from tutorbook import cli
from tutorbook.config import get_settings
from tutorbook.teachers.models import TeacherProfile


@pytest.fixture
def check(api, sandbox, tmp_path, monkeypatch):
    """Run `tutorbook stripe check --json` against the test database, sandbox and app: (exit, items)."""
    env = {
        "DATABASE_URL": api.state.db.url,
        "SANDBOX_URL": sandbox.base_url,
        "PUBLIC_URL": api.state.base_url,
        "VAR_DIR": str(tmp_path),
        "JWT_SECRET": "test-secret-" + "x" * 32,
        "STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
        "STRIPE_CONNECT_WEBHOOK_SECRET": "whsec_test_connect_secret",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(f"TUTORBOOK_{key}", value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()

    def invoke(*args: str):
        result = CliRunner().invoke(cli.app, ["stripe", "check", *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        if "--json" in args:
            return result.exit_code, {i["item"]: i for i in json.loads(result.stdout)["items"]}
        return result.exit_code, result.stdout

    yield invoke
    get_settings.cache_clear()
    root.handlers[:], root.level = handlers, level


def client(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_sandbox",
        base_addresses={"api": sandbox.base_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )


def test_against_the_sandbox_it_passes(c, check):
    f.teacher(c, currency="eur")
    code, out = check()
    assert code == 0, out
    assert "all good" in out and "FAIL" not in out
    code, items = check("--json")
    assert code == 0 and all(i["ok"] for i in items.values())
    assert set(items) == {
        "platform webhook endpoint",
        "Connect webhook endpoint",
        "Connect",
        "platform country",
        "currencies",
    }
    assert "EUR settle in USD" in items["currencies"]["note"]


@pytest.mark.parametrize("which", ["webhook_url", "connect_webhook_url"])
def test_a_missing_endpoint_is_named_with_the_command_that_makes_it(api, sandbox, check, which):
    pay.sandbox_config(sandbox, **{which: None})
    code, items = check("--json")
    item = items["platform webhook endpoint" if which == "webhook_url" else "Connect webhook endpoint"]
    assert code == 1 and not item["ok"] and "no enabled" in item["detail"]
    path = "/api/StripeWebhook/webhook" if which == "webhook_url" else "/api/StripeWebhook/connect"
    assert f"url={api.state.base_url}{path}" in item["fix"] and "api_version=2026-10-28.endive" in item["fix"]
    assert ("connect=true" in item["fix"]) == (which == "connect_webhook_url")
    assert sum(not i["ok"] for i in items.values()) == 1


def test_an_endpoint_without_the_events_or_in_another_api_version_is_named(api, sandbox, check):
    pay.sandbox_config(sandbox, webhook_url=None)
    stripe_client = client(sandbox)
    made = stripe_client.v1.webhook_endpoints.create(
        params={
            "url": api.state.base_url + "/api/StripeWebhook/webhook",
            "enabled_events": ["checkout.session.completed"],
            "api_version": "2024-06-20",
        }
    )
    try:
        code, items = check("--json")
        item = items["platform webhook endpoint"]
        assert code == 1 and not item["ok"]
        assert "does not send" in item["detail"] and "charge.refunded" in item["detail"]
        assert "renders events in 2024-06-20" in item["detail"]
        assert f"/v1/webhook_endpoints/{made.id}" in item["fix"] and "cannot be changed" in item["fix"]
    finally:
        stripe_client.v1.webhook_endpoints.delete(made.id)


def test_connect_not_enabled_is_named(sandbox, check):
    pay.sandbox_config(sandbox, connect_enabled=False)
    code, items = check("--json")
    assert code == 1 and not items["Connect"]["ok"] and "Connect → Get started" in items["Connect"]["fix"]


def test_a_platform_in_another_region_than_the_teachers_accounts_is_named(sandbox, check):
    pay.sandbox_config(sandbox, platform_country="GB")
    code, items = check("--json")
    item = items["platform country"]
    assert code == 1 and not item["ok"] and "TUTORBOOK_CONNECT_COUNTRY" in item["detail"]
    assert "set TUTORBOOK_CONNECT_COUNTRY=GB" in item["fix"]


def test_a_teacher_currency_the_platform_cannot_charge_is_named_with_the_teacher(api, c, check):
    t = f.teacher(c)
    with api.state.db.session_scope() as s:
        s.execute(
            sa.update(TeacherProfile).where(TeacherProfile.user_id == uuid.UUID(t["user"]["id"])).values(currency="xyz")
        )
    code, items = check("--json")
    item = items["currencies"]
    assert code == 1 and not item["ok"] and "XYZ" in item["detail"] and t["user"]["email"] in item["detail"]
    code, out = check()
    assert code == 1 and "FAIL  currencies" in out and "1 to fix" in out


def test_stripe_unreachable_is_exit_2(sandbox, check):
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        code, out = check()
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert code == 2
