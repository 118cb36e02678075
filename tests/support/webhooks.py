"""Signing and posting Stripe-style webhook events, as Stripe would."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

import httpx

from tests.support.servers import http_post

SECRET = "whsec_test_secret"
CONNECT_SECRET = "whsec_test_connect_secret"


def signature(payload: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(type_: str, obj: dict, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or "evt_test_" + secrets.token_hex(8),
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2026-10-28.endive",
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


def post(base_url: str, evt: dict | bytes, *, connect: bool = False, **sign_kwargs) -> httpx.Response:
    """POST a signed event to the platform's endpoint, or (`connect`) to the Connect endpoint,
    signed with the Connect secret unless `secret` says otherwise."""
    payload = evt if isinstance(evt, bytes) else json.dumps(evt).encode()
    if connect:
        sign_kwargs.setdefault("secret", CONNECT_SECRET)
    return http_post(
        f"{base_url}/api/StripeWebhook/{'connect' if connect else 'webhook'}",
        content=payload,
        timeout=30,
        headers={"Stripe-Signature": signature(payload, **sign_kwargs), "Content-Type": "application/json"},
    )
