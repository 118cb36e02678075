"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import stripe

from stripe_sandbox import SandboxHandle
from tests.support.servers import (
    http_client,
    wait_for,  # noqa: F401  (re-exported for the sandbox tests)
)

API_KEY = "sk_test_sandbox"
WEBHOOK_SECRET = "whsec_test_secret_for_sandbox"
SUCCESS_URL = "http://app.test/payment/success?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "http://app.test/payment/cancel?session_id={CHECKOUT_SESSION_ID}&booking_id=42"


# One shared client: creating an httpx.Client costs tens of milliseconds.
http = http_client(timeout=10)


def make_client(base_url: str, api_key: str = API_KEY) -> stripe.StripeClient:
    """A StripeClient pointed at the sandbox, configured like the app's gateway."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base_url},
        max_network_retries=2,
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )


def session_params(**overrides: Any) -> dict[str, Any]:
    """Checkout Session parameters like the ones Tutorbook sends."""
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 5000,
                    "product_data": {"name": "Maths lesson with Ada"},
                },
                "quantity": 1,
            }
        ],
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "client_reference_id": "42",
        "customer_email": "parent@example.com",
        "metadata": {"booking_id": "42", "type": "private_session"},
        "payment_intent_data": {"metadata": {"booking_id": "42"}},
    }
    params.update(overrides)
    return params


def card_form(number: str = "4242 4242 4242 4242", **overrides: str) -> dict[str, str]:
    """The hosted page's form fields."""
    form = {
        "cardNumber": number,
        "cardExpiry": "12 / 34",
        "cardCvc": "123",
        "billingName": "Pat Parent",
    }
    form.update(overrides)
    return form


def submit_card(url: str, number: str = "4242 4242 4242 4242", **fields: str) -> httpx.Response:
    """POST the hosted page's form, without following the redirect."""
    return http.post(url, data=card_form(number, **fields), follow_redirects=False)


def control(handle: SandboxHandle, method: str, path: str, body: Any = None) -> Any:
    """Call a /_sandbox/ control endpoint and return its JSON."""
    response = http.request(method, f"{handle.base_url}/_sandbox/{path}", json=body)
    response.raise_for_status()
    return response.json()


def raw_get(handle: SandboxHandle, path: str) -> dict[str, Any]:
    """GET a /v1 path with httpx and return the raw JSON."""
    response = http.get(f"{handle.base_url}{path}", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200, response.text
    return response.json()


class Receiver:
    """A webhook endpoint that verifies signatures with the stripe SDK.

    It answers 500 to the first attempt of every event (when ``fail_first``), 200 after.
    """

    def __init__(self, secret: str = WEBHOOK_SECRET, fail_first: bool = True) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.acked: list[stripe.Event] = []
        self.bad_signatures = 0
        self.raw: list[tuple[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.handle(
                    body, self.headers.get("Stripe-Signature"), self.headers.get("Content-Type", "")
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, body: bytes, signature: str | None, content_type: str) -> int:
        """Verify, count and acknowledge (or fail) one delivery attempt."""
        try:
            event = stripe.Webhook.construct_event(body, signature, self.secret)
        except stripe.SignatureVerificationError:
            with self.lock:
                self.bad_signatures += 1
            return 400
        with self.lock:
            self.raw.append((body.decode(), signature or ""))
            count = self.attempts.get(event.id, 0) + 1
            self.attempts[event.id] = count
            if self.fail_first and count == 1:
                return 500
            assert content_type.startswith("application/json")
            self.acked.append(event)
            return 200

    def acked_of_type(self, event_type: str) -> list[stripe.Event]:
        """Acknowledged events of one type."""
        with self.lock:
            return [e for e in self.acked if e.type == event_type]

    def close(self) -> None:
        """Stop the HTTP server."""
        self.server.shutdown()
        self.server.server_close()


def payload_of(receiver: Receiver, index: int = 0) -> dict[str, Any]:
    """One received raw payload, parsed."""
    return json.loads(receiver.raw[index][0])
