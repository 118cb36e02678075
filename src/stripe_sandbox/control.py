"""Test-control endpoints under /_sandbox/ (not part of Stripe's API)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .config import FAIL_MODES
from .delivery import Deliverer
from .service import Sandbox

# Settings that may change at runtime, with the types they accept.
RUNTIME_SETTINGS: dict[str, tuple[type, ...]] = {
    "latency_ms": (int,),
    "deliver_webhooks": (bool,),
    "substitute_cancel_url": (bool,),
    "webhook_url": (str, type(None)),
    "connect_webhook_url": (str, type(None)),
    "platform_country": (str,),
    "connect_enabled": (bool,),
    "fail_mode": (str, type(None)),
    "redirect_wait_s": (int, float),
    "retry_schedule_s": (list,),
}


class BadControlRequest(ValueError):
    """A control request with unusable JSON."""


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request_error", "message": message}}, status_code=400)


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadControlRequest(f"Invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadControlRequest("Expected a JSON object.")
    return data


def control_routes(sandbox: Sandbox, deliverer: Deliverer) -> list[Route]:
    """Routes for the clock, runtime settings, webhook deliveries, seeding Checkout Sessions in
    bulk (for the benchmarks) and deleting all test data."""

    async def get_clock(request: Request) -> JSONResponse:
        return JSONResponse(sandbox.clock())

    async def advance_clock(request: Request) -> JSONResponse:
        try:
            seconds = (await _json(request)).get("seconds")
        except BadControlRequest as exc:
            return _bad(str(exc))
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return _bad('Send {"seconds": N} with N >= 0.')
        return JSONResponse(sandbox.advance_clock(seconds))

    async def get_config(request: Request) -> JSONResponse:
        return JSONResponse(_public_config(sandbox))

    async def set_config(request: Request) -> JSONResponse:
        try:
            changes = await _json(request)
            _apply(sandbox, changes)
        except BadControlRequest as exc:
            return _bad(str(exc))
        deliverer.wake()
        return JSONResponse(_public_config(sandbox))

    async def list_deliveries(request: Request) -> JSONResponse:
        rows = [
            {
                "event_id": d.event_id,
                "endpoint_id": d.endpoint_id,
                "type": event_type,
                "attempts": d.attempts,
                "delivered": d.delivered,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "next_attempt_at": d.next_attempt_at,
                "delivered_at": d.delivered_at,
            }
            for d, event_type in sandbox.store.list_deliveries()
        ]
        return JSONResponse({"data": rows})

    async def redeliver(request: Request) -> JSONResponse:
        try:
            ids = (await _json(request)).get("event_ids")
        except BadControlRequest as exc:
            return _bad(str(exc))
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            return _bad('"event_ids" must be a list of event ids.')
        queued = sandbox.redeliver(ids)
        deliverer.wake()
        return JSONResponse({"queued": queued})

    async def seed_sessions(request: Request) -> JSONResponse:
        try:
            specs = _session_specs((await _json(request)).get("sessions"))
        except BadControlRequest as exc:
            return _bad(str(exc))
        return JSONResponse({"ids": sandbox.seed_sessions(specs)})

    async def delete_test_data(request: Request) -> JSONResponse:
        with sandbox.store.transaction():
            deleted = sandbox.store.delete_test_data()
        return JSONResponse({"deleted": deleted})

    return [
        Route("/_sandbox/test-data", delete_test_data, methods=["DELETE"]),
        Route("/_sandbox/checkout-sessions", seed_sessions, methods=["POST"]),
        Route("/_sandbox/clock", get_clock, methods=["GET"]),
        Route("/_sandbox/clock/advance", advance_clock, methods=["POST"]),
        Route("/_sandbox/config", get_config, methods=["GET"]),
        Route("/_sandbox/config", set_config, methods=["POST"]),
        Route("/_sandbox/deliveries", list_deliveries, methods=["GET"]),
        Route("/_sandbox/deliveries/redeliver", redeliver, methods=["POST"]),
    ]


def _apply(sandbox: Sandbox, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name not in RUNTIME_SETTINGS:
            raise BadControlRequest(f"Unknown or read-only setting: {name}")
        allowed = RUNTIME_SETTINGS[name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise BadControlRequest(f"Invalid value for {name}: {value!r}")
        if name == "fail_mode" and value not in FAIL_MODES:
            raise BadControlRequest(f"fail_mode must be one of {FAIL_MODES}")
        if name == "latency_ms" and value < 0:
            raise BadControlRequest("latency_ms must be >= 0")
        if name == "retry_schedule_s" and not (value and all(isinstance(v, int | float) and v >= 0 for v in value)):
            raise BadControlRequest("retry_schedule_s must be a non-empty list of seconds")
    for name, value in changes.items():
        setattr(sandbox.config, name, tuple(value) if name == "retry_schedule_s" else value)


SEED_STATES = ("open", "expired", "paid")
SEED_MAX = 10_000  # sessions per request


def _session_specs(raw: Any) -> list[dict[str, Any]]:
    """The sessions of a seeding request, checked: Unix times, an amount, a currency, a state."""
    if not isinstance(raw, list) or not raw or len(raw) > SEED_MAX:
        raise BadControlRequest(f'Send {{"sessions": [...]}} with 1 to {SEED_MAX:,} sessions.')
    for n, spec in enumerate(raw):
        if not isinstance(spec, dict):
            raise BadControlRequest(f"sessions[{n}] must be an object.")
        for name in ("created", "expires_at", "amount"):
            value = spec.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadControlRequest(f"sessions[{n}].{name} must be a non-negative integer.")
        if not isinstance(spec.get("currency"), str) or len(spec["currency"]) != 3:
            raise BadControlRequest(f"sessions[{n}].currency must be a three-letter code.")
        if spec.get("state") not in SEED_STATES:
            raise BadControlRequest(f"sessions[{n}].state must be one of {', '.join(SEED_STATES)}.")
        metadata = spec.get("metadata", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise BadControlRequest(f"sessions[{n}].metadata must map names to strings.")
        for name in ("client_reference_id", "customer_email"):
            if not isinstance(spec.get(name, ""), str | None):
                raise BadControlRequest(f"sessions[{n}].{name} must be a string.")
    return raw


def _public_config(sandbox: Sandbox) -> dict[str, Any]:
    shown = dataclasses.asdict(sandbox.config)
    shown.pop("api_key")
    shown.pop("webhook_secret")
    shown.pop("connect_webhook_secret")
    shown["retry_schedule_s"] = list(shown["retry_schedule_s"])
    return shown
