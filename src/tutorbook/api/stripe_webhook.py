"""/api/StripeWebhook/webhook."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from tutorbook.api.deps import ServicesDep
from tutorbook.errors import AppError, BadRequest
from tutorbook.flows import followups, stripe_events
from tutorbook.payments import gateway as gw
from tutorbook.payments import webhooks
from tutorbook.schemas import Envelope, errors, ok

router = APIRouter(prefix="/api/StripeWebhook", tags=["Stripe"], responses=errors(400, 413, 422))


class PayloadTooLarge(AppError):
    status_code = 413
    message = "Webhook body too large"


@router.post("/webhook", response_model=Envelope[str])
async def webhook(request: Request, background: BackgroundTasks, svc: ServicesDep):
    """Stripe events, verified by signature before anything is read."""
    if int(request.headers.get("content-length") or 0) > webhooks.MAX_BODY:
        raise PayloadTooLarge()
    body = await request.body()
    if len(body) > webhooks.MAX_BODY:
        raise PayloadTooLarge()
    try:
        event = svc.gateway.construct_event(body, request.headers.get("stripe-signature"))
    except gw.InvalidWebhook as exc:
        raise BadRequest("Invalid Stripe signature or payload") from exc
    webhooks.check_shape(event)
    outcome = await stripe_events.receive(svc, event)
    request.app.state.metrics.inc("tutorbook_webhook_events_total", outcome=outcome.kind)
    if outcome.followups:
        background.add_task(followups.run, svc, outcome.followups)
    return ok(outcome.kind, "Received")
