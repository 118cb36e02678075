"""A verified Stripe event, received: recorded once and acted on in one transaction (or one
statement, for a type the app only records), with what can be done in that transaction done
there (an instant meeting link); the follow-ups that call out are the caller's to run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from tutorbook.bookings.outcomes import Outcome
from tutorbook.clock import utc_now
from tutorbook.db.doors import one_statement
from tutorbook.flows import followups
from tutorbook.flows.services import Services
from tutorbook.payments import webhooks


def _handle(session: Session, *, svc: Services, event: dict[str, Any], now: datetime) -> Outcome:
    outcome = webhooks.handle(session, event=event, platform=svc.terms, now=now)
    outcome.followups = followups.make_instant_links(session, svc=svc, followups=outcome.followups, now=now)
    return outcome


async def _record_ignored_many(conn: AsyncConnection, calls: list[dict[str, Any]]) -> list[Outcome]:
    return await webhooks.record_ignored_many(conn, [call["event"] for call in calls], now=utc_now())


# One INSERT; on PostgreSQL the events that wait while one is written share the next (a Coalescer).
_RECORD_IGNORED = one_statement(webhooks.record_ignored, batch=_record_ignored_many)


async def receive(svc: Services, event: dict[str, Any]) -> Outcome:
    """Record and act on one verified, well-formed event; its outcome, with the follow-ups left.

    An event of a type the app does not act on is one INSERT, atomic on its own. On PostgreSQL
    the events that arrive together share it: while one INSERT is in flight the next ones wait
    and go in the next, as one statement (`Coalescer`); so under load the database's round
    trip and the driver's work are paid once per batch, not per event."""
    if not webhooks.acts_on(event):
        return await svc.tx(_RECORD_IGNORED, event=event, now=utc_now())
    return await svc.tx(_handle, svc=svc, event=event, now=utc_now())
