"""The periodic jobs: expire abandoned checkouts, complete past sessions, meeting links, purge.

Each job is `(svc, *, now, dry_run=False, progress=None) -> JobResult` and opens its own short
transactions: candidates are selected in one (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so two
workers take different batches), Stripe is called with no transaction open, and the result is
written in another as a compare-and-set, so a row another worker moved first is skipped.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session

from tutorbook.accounts import throttle
from tutorbook.bookings import lifecycle, queries, settling
from tutorbook.bookings import repository as repo
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.config import Settings
from tutorbook.flows import booking as booking_flows
from tutorbook.flows import followups, lesson_payouts, settle
from tutorbook.flows.services import Services
from tutorbook.jobs.credits import settle_stale_purchases
from tutorbook.jobs.result import JobResult, Progress
from tutorbook.meetings import links

BATCH = 100
# expire: rows selected (on PostgreSQL, locked) per transaction. Bookings without a checkout are
# cancelled in that same transaction with one UPDATE; the others are released before Stripe is called.
EXPIRE_BATCH = 1000
# A Pending booking with no checkout is a booking whose request died between holding the slot and
# storing the checkout. The request is surely over once it has waited for a Stripe call slot (one
# timeout) and made every attempt (retries + 1 timeouts); this margin covers the SDK's backoff
# before each retry (at most 5 s each), the two short transactions and
# clock differences between replicas. Cancelling earlier would still be safe (a checkout stored
# later is a late payment), only rude.
UNOPENED_MARGIN = timedelta(seconds=60)


def unopened_grace(settings: Settings) -> timedelta:
    """How long a booking may wait for its checkout before the expire job cancels it."""
    attempts = settings.stripe_max_network_retries + 1
    return timedelta(seconds=settings.stripe_timeout_seconds * (attempts + 1)) + UNOPENED_MARGIN


def actor(job: str) -> str:
    return f"job:{job}"


def cancel_pending(session: Session, *, booking_id: uuid.UUID, reason: Reason, job: str, now: datetime) -> str:
    """Pending -> Cancelled as a compare-and-set; "skipped" when the booking moved meanwhile."""
    return settling.cancel_if_pending(session, booking_id=booking_id, reason=reason, actor=actor(job), now=now)


def fulfil_paid(svc: Services, *, checkout: Checkout, job: str, now: datetime) -> str:
    """Confirm (or refund, for a late payment) a paid checkout, then send refunds and make links."""
    return booking_flows.fulfil_sync(svc, checkout=checkout, actor=actor(job)).kind


# -- expire ------------------------------------------------------------------------------


def expire(svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None) -> JobResult:
    """Pending past its checkout expiry: close the checkout at Stripe (fulfil instead if it was
    paid), then Cancelled `checkout_expired`, all such bookings at once from Stripe's lists
    (flows/settle.py); with no checkout at all, `checkout_failed` once the request that should
    have opened one is surely over (unopened_grace)."""
    result = JobResult("expire", dry_run=dry_run, progress=progress)
    grace = unopened_grace(svc.settings)
    linked: list[queries.StaleRow] = []
    after = None
    while True:
        rows, unlinked = svc.tx_sync(_stale_batch, now=now, grace=grace, after=after, dry_run=dry_run)
        for row in rows:
            if row.checkout_id is None:
                result.add(row.id, unlinked[row.id])
            else:
                linked.append(row)
        if len(rows) < EXPIRE_BATCH:
            break
        after = rows[-1].id
    settle.settle_stale_checkouts(svc, linked, now=now, dry_run=dry_run, out=result, created_within=grace)
    settle_stale_purchases(svc, now=now, dry_run=dry_run, out=result)  # lesson packages' checkouts (#28)
    return result


def _stale_batch(
    session: Session, *, now: datetime, grace: timedelta, after: uuid.UUID | None, dry_run: bool
) -> tuple[list[queries.StaleRow], dict[uuid.UUID, str]]:
    rows = queries.stale_pending(session, now=now, unopened_before=now - grace, limit=EXPIRE_BATCH, after=after)
    return rows, _cancel_unlinked(session, rows=rows, now=now, dry_run=dry_run)


def _cancel_unlinked(
    session: Session, *, rows: list[queries.StaleRow], now: datetime, dry_run: bool
) -> dict[uuid.UUID, str]:
    """Crashed between reserve and Stripe: no checkout to close, so cancel under the batch lock,
    all of the batch's in one compare-and-set UPDATE."""
    ids = [row.id for row in rows if row.checkout_id is None]
    if dry_run:
        return dict.fromkeys(ids, "would_cancel")
    moved = settling.cancel_many_if_pending(
        session, booking_ids=ids, reason=Reason.CHECKOUT_FAILED, actor=actor("expire"), now=now
    )
    return {b: (Reason.CHECKOUT_FAILED.value if b in moved else "skipped") for b in ids}


# -- complete ----------------------------------------------------------------------------


def complete(svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None) -> JobResult:
    """Confirmed bookings whose end time has passed become Completed; then the teachers of
    completed lessons paid with a package's credit get their share (issue #28: the lessons the
    teacher marked completed too, and the transfers an earlier run could not make)."""
    result = JobResult("complete", dry_run=dry_run, progress=progress)
    after = None
    while True:
        batch = svc.tx_sync(_complete_batch, now=now, after=after, dry_run=dry_run)
        for booking_id, outcome in batch:
            result.add(booking_id, outcome)
        if len(batch) < BATCH:
            break
        after = batch[-1][0]
    if not dry_run:
        for due in lesson_payouts.due_sync(svc):
            result.attempt(due.booking_id, partial(lesson_payouts.pay_sync, svc, due, now=now))
    return result


def _complete_batch(
    session: Session, *, now: datetime, after: uuid.UUID | None, dry_run: bool
) -> list[tuple[uuid.UUID, str]]:
    return [
        (booking.id, "would_complete" if dry_run else _complete(session, booking, now=now))
        for booking in queries.ended_confirmed(session, now=now, limit=BATCH, after=after)
    ]


def _complete(session: Session, booking: Booking, *, now: datetime) -> str:
    change = lifecycle.complete(
        Status.CONFIRMED, now=now, starts_at=booking.starts_at, ends_at=booking.ends_at, by_job=True
    )
    return "completed" if repo.apply(session, booking, change, actor=actor("complete")) else "skipped"


# -- meeting links -----------------------------------------------------------------------


def meeting_links(
    svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None
) -> JobResult:
    """Create missing meeting links for Confirmed bookings whose next attempt is due (backoff),
    and move the meetings that could not follow their booking to its new time (one try a run)."""
    result = JobResult("meeting-links", dry_run=dry_run, progress=progress)
    due, unmoved = svc.tx_sync(_links_due, now=now)
    for booking_id in due:
        if dry_run:
            result.add(booking_id, "would_create")
        else:
            result.attempt(booking_id, partial(followups.ensure_link, svc, booking_id=booking_id, now=now))
    for booking_id in unmoved:
        if dry_run:
            result.add(booking_id, "would_move")
        else:
            result.attempt(booking_id, partial(followups.move_link, svc, booking_id=booking_id))
    return result


def _links_due(session: Session, *, now: datetime) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    return links.due_ids(session, now=now, limit=BATCH), links.moves_due(session, now=now, limit=BATCH)


# -- purge -------------------------------------------------------------------------------


def purge(svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None) -> JobResult:
    """Delete never-paid Cancelled bookings (no payment, no refund) older than the retention,
    with their history. Anything that ever took money is kept. Also forgets failed logins older
    than the login throttle's window (not counted in the result: they are not bookings)."""
    result = JobResult("purge", dry_run=dry_run, progress=progress)
    if not dry_run:
        svc.tx_sync(throttle.forget_stale, before=now - timedelta(seconds=svc.settings.login_window_seconds))
    before = now - timedelta(days=svc.settings.purge_retention_days)
    after = None
    while True:
        ids, deleted = svc.tx_sync(_purge_batch, before=before, after=after, dry_run=dry_run)
        for booking_id in ids:
            gone = "would_delete" if dry_run else "deleted"
            result.add(booking_id, gone if booking_id in deleted else "skipped")
        if len(ids) < BATCH * 5:
            return result
        after = ids[-1]


def _purge_batch(
    session: Session, *, before: datetime, after: uuid.UUID | None, dry_run: bool
) -> tuple[list[uuid.UUID], set[uuid.UUID]]:
    ids = queries.purgeable_ids(session, before=before, limit=BATCH * 5, after=after)
    return ids, set(ids if dry_run else queries.delete_never_paid(session, ids=ids, before=before))
