"""The sandbox as an ASGI app: Stripe's /v1 subset, the hosted page and /_sandbox controls."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .config import SandboxConfig
from .control import control_routes
from .delivery import Deliverer
from .errors import ApiError, api_error, invalid
from .hosted import HostedPages, OnboardingPages
from .objects import new_id
from .params import parse_pairs
from .schema import check_request
from .service import ApiCall, ApiResult, Sandbox, fingerprint
from .store import Store
from .versions import check_api_version, endpoint_api_version

log = logging.getLogger(__name__)

HANG_S = 30.0
IDEMPOTENCY_PURGE_EVERY_S = 3600.0

Operation = Callable[..., dict[str, Any]]

# (method, path, Sandbox method name)
API_ROUTES = [
    ("POST", "/v1/checkout/sessions", "create_session"),
    ("GET", "/v1/checkout/sessions", "list_sessions"),
    ("GET", "/v1/checkout/sessions/{session_id}", "retrieve_session"),
    ("GET", "/v1/checkout/sessions/{session_id}/line_items", "list_line_items"),
    ("POST", "/v1/checkout/sessions/{session_id}/expire", "expire_session"),
    ("POST", "/v1/refunds", "create_refund"),
    ("GET", "/v1/refunds", "list_refunds"),
    ("GET", "/v1/refunds/{refund_id}", "retrieve_refund"),
    ("GET", "/v1/payment_intents/{intent_id}", "retrieve_payment_intent"),
    ("GET", "/v1/charges/{charge_id}", "retrieve_charge"),
    ("GET", "/v1/events", "list_events"),
    ("GET", "/v1/events/{event_id}", "retrieve_event"),
    ("POST", "/v1/accounts", "create_account"),
    ("GET", "/v1/accounts", "list_accounts"),
    ("GET", "/v1/accounts/{account_id}", "retrieve_account"),
    ("POST", "/v1/account_links", "create_account_link"),
    ("POST", "/v1/transfers", "create_transfer"),
    ("GET", "/v1/transfers", "list_transfers"),
    ("GET", "/v1/transfers/{transfer_id}", "retrieve_transfer"),
    ("GET", "/v1/transfers/{transfer_id}/reversals", "list_transfer_reversals"),
    ("POST", "/v1/transfers/{transfer_id}/reversals", "create_transfer_reversal"),
    ("POST", "/v1/customers", "create_customer"),
    ("GET", "/v1/customers", "list_customers"),
    ("GET", "/v1/customers/{customer_id}", "retrieve_customer"),
    ("GET", "/v1/payment_methods", "list_payment_methods"),
    ("GET", "/v1/payment_methods/{method_id}", "retrieve_payment_method"),
    ("POST", "/v1/payment_methods/{method_id}/attach", "attach_payment_method"),
    ("POST", "/v1/payment_methods/{method_id}/detach", "detach_payment_method"),
    ("POST", "/v1/payment_intents", "create_payment_intent"),
    ("GET", "/v1/application_fees", "list_application_fees"),
    ("GET", "/v1/application_fees/{fee_id}", "retrieve_application_fee"),
    ("GET", "/v1/application_fees/{fee_id}/refunds", "list_fee_refunds"),
    ("GET", "/v1/balance_transactions", "list_balance_transactions"),
    ("POST", "/v1/webhook_endpoints", "create_webhook_endpoint"),
    ("GET", "/v1/webhook_endpoints", "list_webhook_endpoints"),
    ("GET", "/v1/webhook_endpoints/{endpoint_id}", "retrieve_webhook_endpoint"),
    ("POST", "/v1/webhook_endpoints/{endpoint_id}", "update_webhook_endpoint"),
    ("DELETE", "/v1/webhook_endpoints/{endpoint_id}", "delete_webhook_endpoint"),
    ("GET", "/v1/account", "retrieve_platform_account"),
    ("GET", "/v1/country_specs/{country}", "retrieve_country_spec"),
    ("GET", "/v1/balance_transactions/{txn_id}", "retrieve_balance_transaction"),
]


def create_app(config: SandboxConfig) -> Starlette:
    """Build the sandbox app; its state lives in ``config.db_path``."""
    config = dataclasses.replace(config)  # runtime changes must not leak to the caller
    endpoint_api_version(config)  # an unknown endpoint version fails at start, not per event
    store = Store(config.db_path)
    sandbox = Sandbox(config, store)
    deliverer = Deliverer(sandbox)
    store.on_deliveries_queued = deliverer.wake
    pages = HostedPages(sandbox, deliverer)

    routes = [
        Route(path, _api_endpoint(sandbox, getattr(sandbox, name), name), methods=[method])
        for method, path, name in API_ROUTES
    ]
    routes.append(
        Route(
            "/v1/{rest:path}",
            _api_endpoint(sandbox, _unrecognized),
            methods=["GET", "POST", "DELETE", "PUT", "PATCH"],
        )
    )
    routes.append(Route("/c/pay/{session_id}", pages.show, methods=["GET"]))
    routes.append(Route("/c/pay/{session_id}", pages.submit, methods=["POST"]))
    onboarding = OnboardingPages(sandbox)
    routes.append(Route("/setup/s/{account_id}/{token}", onboarding.show, methods=["GET"]))
    routes.append(Route("/setup/s/{account_id}/{token}", onboarding.submit, methods=["POST"]))
    routes += control_routes(sandbox, deliverer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(deliverer.run(), name="sandbox-webhooks"),
            asyncio.create_task(_expiry_loop(sandbox), name="sandbox-expiry"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            store.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    app.state.deliverer = deliverer
    return app


async def _expiry_loop(sandbox: Sandbox) -> None:
    """Expire due sessions every ``expiry_check_interval_s``; purge old idempotency keys."""
    last_purge = 0.0
    while True:
        try:
            sandbox.expire_due()
            if time.monotonic() - last_purge > IDEMPOTENCY_PURGE_EVERY_S:
                sandbox.purge_idempotency()
                last_purge = time.monotonic()
        except Exception:  # keep expiring even after an unexpected failure
            log.exception("sandbox expiry check failed")
        await asyncio.sleep(sandbox.config.expiry_check_interval_s)


def _unrecognized(call: ApiCall, rest: str) -> dict[str, Any]:
    raise ApiError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({call.method}: {call.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        replayable=False,
    )


def _api_endpoint(sandbox: Sandbox, op: Operation, route: str = "") -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        request_id = new_id("req_", 14)
        config = sandbox.config
        if config.fail_mode == "error500":
            return _error(api_error("Simulated Stripe outage (sandbox fail_mode=error500)."), request_id)
        if config.fail_mode == "hang":
            await _hang(sandbox)
        if config.fail_mode == "refuse":  # a refusal the product's own checks did not foresee
            refusal = invalid("Simulated refusal (sandbox fail_mode=refuse).", None, "parameter_invalid_empty")
            return _error(refusal, request_id)
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)
        try:
            _authenticate(request, config.api_key)
            call = await _parse_call(request, request_id, sandbox)
            check_request(route, call.params)
            result = sandbox.execute(call, lambda c: op(c, **request.path_params))
        except ApiError as err:
            return _error(err, request_id)
        except Exception:
            log.exception("sandbox API request failed")
            return _error(api_error(), request_id)
        return _respond(result, request_id, call.api_version)

    return endpoint


async def _hang(sandbox: Sandbox) -> None:
    """Sleep HANG_S seconds, or less if fail_mode is switched off meanwhile."""
    deadline = time.monotonic() + HANG_S
    while sandbox.config.fail_mode == "hang" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _authenticate(request: Request, api_key: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    key = credential.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    elif scheme.lower() != "bearer":
        key = ""
    if not key:
        raise ApiError(
            401,
            "authentication_error",
            "You did not provide an API key. You need to provide your API key in "
            "the Authorization header, using Bearer auth (e.g. 'Authorization: "
            "Bearer YOUR_SECRET_KEY').",
            replayable=False,
        )
    if key != api_key:
        masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else key
        raise ApiError(401, "authentication_error", f"Invalid API Key provided: {masked}", replayable=False)


async def _parse_call(request: Request, request_id: str, sandbox: Sandbox) -> ApiCall:
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        body = await request.body()
        try:
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise invalid("Invalid request body: expected application/x-www-form-urlencoded.") from None
    key = request.headers.get("idempotency-key")
    if key is not None and (not key or len(key) > 255):
        raise invalid("Idempotency keys must be 1 to 255 characters long.")
    base_url = sandbox.config.public_url or str(request.base_url).rstrip("/")
    return ApiCall(
        method=request.method,
        path=request.url.path,
        params=parse_pairs(pairs),
        fingerprint=fingerprint(request.method, request.url.path, pairs),
        request_id=request_id,
        idempotency_key=key,
        api_version=check_api_version(request.headers.get("stripe-version"), sandbox.config),
        base_url=base_url,
        stripe_account=request.headers.get("stripe-account") or None,
    )


def _respond(result: ApiResult, request_id: str, api_version: str) -> Response:
    headers = {"Request-Id": request_id, "Stripe-Version": api_version}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
        headers["Original-Request"] = result.request_id
    return Response(result.body, status_code=result.status, media_type="application/json", headers=headers)


def _error(err: ApiError, request_id: str) -> Response:
    return Response(
        json.dumps(err.body(), indent=2),
        status_code=err.status,
        media_type="application/json",
        headers={"Request-Id": request_id},
    )
