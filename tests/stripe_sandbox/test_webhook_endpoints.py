"""Webhook endpoints as Stripe has them: the platform's and Connect's, each with its own secret;
a Connect event (one with `account`) goes only to Connect endpoints, any other only to the
platform's (docs.stripe.com/connect/webhooks). Also the platform's account, Connect being
enabled, and country specs (what `tutorbook stripe check` reads)."""

from __future__ import annotations

import pytest
import stripe

from .helpers import (
    API_KEY,
    WEBHOOK_SECRET,
    Receiver,
    control,
    http,
    make_client,
    session_params,
    submit_card,
    wait_for,
)
from .test_connect import make_account, onboard

CONNECT_SECRET = "whsec_test_connect_secret"


def test_connect_events_go_only_to_the_connect_endpoint_signed_with_its_secret(make_sandbox):
    platform, connect = Receiver(fail_first=False), Receiver(secret=CONNECT_SECRET, fail_first=False)
    try:
        handle = make_sandbox(
            webhook_url=platform.url, connect_webhook_url=connect.url, connect_webhook_secret=CONNECT_SECRET
        )
        client = make_client(handle.base_url)
        account = make_account(client)
        onboard(client, account.id)
        session = client.v1.checkout.sessions.create(params=session_params())
        assert submit_card(session.url).status_code == 303
        [updated] = wait_for(lambda: connect.acked_of_type("account.updated"))
        assert updated.account == account.id
        wait_for(lambda: platform.acked_of_type("checkout.session.completed"))
        assert platform.acked_of_type("account.updated") == []
        assert connect.acked_of_type("checkout.session.completed") == []
        # Each was signed with its own endpoint's secret: neither saw a bad signature.
        assert platform.bad_signatures == connect.bad_signatures == 0
        deliveries = control(handle, "GET", "deliveries")["data"]
        by_event = {d["type"]: d["endpoint_id"] for d in deliveries}
        assert by_event["account.updated"] != by_event["checkout.session.completed"]
    finally:
        platform.close()
        connect.close()


def test_a_connect_event_is_not_signed_with_the_platform_secret(make_sandbox):
    """The receiver of the Connect endpoint checks with the PLATFORM's secret: every attempt fails."""
    wrong = Receiver(secret=WEBHOOK_SECRET, fail_first=False)
    try:
        handle = make_sandbox(connect_webhook_url=wrong.url, connect_webhook_secret=CONNECT_SECRET)
        client = make_client(handle.base_url)
        onboard(client, make_account(client).id)
        wait_for(lambda: wrong.bad_signatures >= 1)
        assert wrong.acked == []
    finally:
        wrong.close()


def test_webhook_endpoints_made_through_the_api(client, sandbox):
    made = client.v1.webhook_endpoints.create(
        params={"url": "https://app.example/hooks/connect", "enabled_events": ["account.updated"], "connect": True}
    )
    assert made.secret.startswith("whsec_") and made.application is not None and made.status == "enabled"
    assert made.api_version == "2026-10-28.endive"
    platform = client.v1.webhook_endpoints.create(
        params={"url": "https://app.example/hooks", "enabled_events": ["*"], "api_version": "2026-10-28.endive"}
    )
    assert platform.application is None
    listed = {e.id: e for e in client.v1.webhook_endpoints.list().data}
    assert set(listed) == {made.id, platform.id} and listed[made.id].secret is None
    assert client.v1.webhook_endpoints.retrieve(made.id).enabled_events == ["account.updated"]
    off = client.v1.webhook_endpoints.update(made.id, params={"disabled": True, "enabled_events": ["*"]})
    assert (off.status, off.enabled_events) == ("disabled", ["*"])
    assert client.v1.webhook_endpoints.delete(platform.id).deleted is True
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [made.id]
    for bad, param in (({"url": "ftp://x", "enabled_events": ["*"]}, "url"), ({"url": "https://x"}, "enabled_events")):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.webhook_endpoints.create(params=bad)
        assert refused.value.param == param


def test_an_endpoint_gets_only_the_events_it_asked_for_with_its_own_secret(make_sandbox):
    handle = make_sandbox()
    client = make_client(handle.base_url)
    made = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/x", "enabled_events": ["refund.created"]}
    )
    receiver = Receiver(secret=made.secret, fail_first=False)
    try:
        client.v1.webhook_endpoints.update(made.id, params={"url": receiver.url})
        session = client.v1.checkout.sessions.create(params=session_params())
        submit_card(session.url)
        intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
        client.v1.refunds.create(params={"payment_intent": intent, "amount": 100})
        wait_for(lambda: receiver.acked_of_type("refund.created"))
        assert {e.type for e in receiver.acked} == {"refund.created"}
    finally:
        receiver.close()


def test_the_platform_account_connect_and_country_specs(client, sandbox):
    auth = {"Authorization": f"Bearer {API_KEY}"}
    account = http.get(f"{sandbox.base_url}/v1/account", headers=auth).json()
    assert (account["country"], account["default_currency"]) == ("US", "usd")
    spec = client.v1.country_specs.retrieve("US")
    assert "usd" in spec.supported_payment_currencies and spec.supported_transfer_countries == ["US"]
    assert "FR" in client.v1.country_specs.retrieve("GB").supported_transfer_countries
    control(sandbox, "POST", "config", {"connect_enabled": False, "platform_country": "GB"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.accounts.list()
    assert "signed up for Connect" in str(refused.value)
    assert http.get(f"{sandbox.base_url}/v1/account", headers=auth).json()["default_currency"] == "gbp"


OTHER_VERSION = "2026-09-30.dahlia"


def test_an_endpoint_made_with_an_api_version_gets_its_events_labelled_in_it(make_sandbox):
    # WebhookEndpoint.api_version: "the API version that events are rendered as for this webhook
    # endpoint"; the platform's configured endpoint keeps the account's (pinned) version.
    own, platform = Receiver(fail_first=False), Receiver(fail_first=False)
    try:
        handle = make_sandbox(webhook_url=platform.url, extra_api_versions=(OTHER_VERSION,))
        made = http.post(
            f"{handle.base_url}/v1/webhook_endpoints",
            headers={"Authorization": f"Bearer {API_KEY}"},
            data={"url": own.url, "enabled_events[]": "checkout.session.expired", "api_version": OTHER_VERSION},
        )
        assert made.status_code == 200, made.text
        own.secret = made.json()["secret"]
        client = make_client(handle.base_url)
        session = client.v1.checkout.sessions.create(params=session_params())
        client.v1.checkout.sessions.expire(session.id)
        [mine] = wait_for(lambda: own.acked_of_type("checkout.session.expired"))
        [theirs] = wait_for(lambda: platform.acked_of_type("checkout.session.expired"))
        assert mine.id == theirs.id
        assert mine.api_version == OTHER_VERSION and theirs.api_version == stripe.api_version
    finally:
        own.close()
        platform.close()

