"""A verified Stripe event, received: recorded once and acted on in one transaction (or one
statement, for a type the app only records), with what can be done in that transaction done
there (an instant meeting link); the follow-ups that call out are the caller's to run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tutorbook.bookings.service import Outcome
from tutorbook.clock import utc_now
from tutorbook.flows import followups
from tutorbook.flows.services import Services
from tutorbook.payments import webhooks


def _handle(session: Session, *, svc: Services, event: dict[str, Any], now: datetime) -> Outcome:
    outcome = webhooks.handle(session, event=event, platform=svc.terms, now=now)
    outcome.followups = followups.make_instant_links(session, svc=svc, followups=outcome.followups, now=now)
    return outcome


async def receive(svc: Services, event: dict[str, Any]) -> Outcome:
    """Record and act on one verified, well-formed event; its outcome, with the follow-ups left."""
    if not webhooks.acts_on(event):  # one statement, atomic on its own
        return await svc.statement(webhooks.record_ignored, event=event, now=utc_now())
    return await svc.tx(_handle, svc=svc, event=event, now=utc_now())
