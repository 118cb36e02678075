"""/api/StripeWebhook/webhook (the platform's events) and /api/StripeWebhook/connect (the events of
the teachers' connected accounts): two Stripe webhook endpoints, each verified with its own
secret, handled alike."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import Request, Response
from starlette.background import BackgroundTask

from tutorbook import tracing
from tutorbook.api.deps import get_services
from tutorbook.api.routing import Router
from tutorbook.errors import AppError, BadRequest
from tutorbook.flows import followups, stripe_events
from tutorbook.payments import gateway as gw
from tutorbook.payments import webhooks
from tutorbook.schemas import Envelope, errors

router = Router(prefix="/api/StripeWebhook", tags=["Stripe"], responses=errors(400, 413, 422))


class PayloadTooLarge(AppError):
    status_code = 413
    message = "Webhook body too large"


@lru_cache(maxsize=128)  # the outcomes are a few dozen words
def _answer(kind: str) -> bytes:
    return Envelope[str](message="Received", data=kind).model_dump_json().encode()


@router.post("/webhook", response_model=Envelope[str])
async def webhook(request: Request) -> Response:
    """The platform's Stripe events, verified by signature (TUTORBOOK_STRIPE_WEBHOOK_SECRET)
    before anything is read.

    The busiest route (Stripe sends every event of the account here), so it asks FastAPI for
    nothing per request: no dependencies, and an answer already serialised (`Envelope[str]`,
    the model above, rendered once per outcome). docs/PERFORMANCE.md, section 3."""
    return await _receive(request, connect=False)


@router.post("/connect", response_model=Envelope[str])
async def connect_webhook(request: Request) -> Response:
    """The Stripe events of connected accounts (a Connect endpoint: `account.updated`, ...),
    verified with that endpoint's own secret (TUTORBOOK_STRIPE_CONNECT_WEBHOOK_SECRET), then
    handled as the platform's are."""
    return await _receive(request, connect=True)


async def _receive(request: Request, *, connect: bool) -> Response:
    if int(request.headers.get("content-length") or 0) > webhooks.MAX_BODY:
        raise PayloadTooLarge()
    body = await request.body()
    if len(body) > webhooks.MAX_BODY:
        raise PayloadTooLarge()
    svc = get_services(request)
    try:
        event = svc.gateway.construct_event(body, request.headers.get("stripe-signature"), connect=connect)
    except gw.InvalidWebhook as exc:
        raise BadRequest("Invalid Stripe signature or payload") from exc
    webhooks.check_shape(event)
    # The booking's trace goes on here: the Checkout Session carries the traceparent it was made in.
    with tracing.continued(_traceparent(event), "stripe.webhook", stripe_event_type=event.get("type")):
        outcome = await stripe_events.receive(svc, event)
    svc.metrics.inc("tutorbook_webhook_events_total", outcome=outcome.kind)
    # The follow-ups (refunds, links that call out) run after the answer is sent, as before.
    todo = BackgroundTask(followups.run, svc, outcome.followups) if outcome.followups else None
    return Response(_answer(outcome.kind), media_type="application/json", background=todo)


def _traceparent(event: dict[str, Any]) -> str | None:
    """The traceparent stored in the event's object's metadata (tracing on), or None."""
    if not tracing.enabled():
        return None
    obj = event.get("data", {}).get("object")
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    found = metadata.get(gw.TRACE_METADATA) if isinstance(metadata, dict) else None
    return found if isinstance(found, str) else None
