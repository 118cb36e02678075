"""Settling stale checkouts in bulk: the expire job's Pending bookings whose checkout expired by
our clock while Stripe's webhooks were lost.

One booking at a time (`booking.settle_stale_checkout`: expire the session, re-read it if Stripe
refuses, then a transaction) costs one or two Stripe calls each, 0.6 s a booking at Stripe's
typical 300 ms. Here Stripe's list endpoint is asked instead, 100 sessions a page, for the
sessions created over the bookings' creation times (`creation_windows`), one status at a time:

- complete and paid: fulfilled through the one `bookings.settling.fulfil`, a batch per
  transaction; a payment that cannot pay for its booking is refunded by it, and a booking still
  Pending afterwards expires like an unpaid one (as the per-row path does);
- expired, or complete and unpaid: cancelled `checkout_expired`, a batch per transaction;
- open: expired at Stripe (only these are), then cancelled; a session Stripe refuses to expire
  as no longer open is re-read, and fulfilled if it was paid meanwhile.

The Stripe calls (listing pages, expiring) run in a pool of TUTORBOOK_JOB_STRIPE_CONCURRENCY
threads, the batches' transactions in threads of their own, and the calling thread dispatches
between them, so neither waits for the other. Every cancel is a
compare-and-set on Pending, so a booking confirmed meanwhile (webhook, success page) is skipped,
never cancelled while paid. A booking whose session no listing showed takes the per-row path, in
the same Stripe pool (so within the same bound, in parallel); if a listing failed (Stripe
unreachable), those stay Pending for the next run.
"""

from __future__ import annotations

import logging
import queue
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tutorbook.bookings import settling
from tutorbook.bookings.checkout import Checkout
from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.outcomes import Followups, Outcome
from tutorbook.bookings.queries import StaleRow
from tutorbook.clock import utc_now
from tutorbook.flows import booking as booking_flows
from tutorbook.flows import followups
from tutorbook.flows.services import Services
from tutorbook.payments import gateway as gw

log = logging.getLogger("tutorbook.flows")

STATUSES: tuple[gw.CheckoutStatus, ...] = ("open", "complete", "expired")  # open first: its expiries start early
WINDOW_ROWS = 1000  # stale bookings per listed window: about 10 pages, listed one after another
CANCEL_BATCH = 1000  # bookings cancelled per transaction
FULFIL_BATCH = 100  # paid checkouts fulfilled per transaction (each a few statements and two mails)
# Batches in flight at once: two, so one's statements run while the other's Python does (their
# bookings never overlap: each booking is in one batch).
DB_THREADS = 2
# A session is made during its booking's request, just after the booking; Stripe's clock and ours
# may differ by this much. The window is widened by it (and by the request's longest life after).
CLOCK_MARGIN = timedelta(minutes=5)


def _fulfil_many(
    session: Session, *, svc: Services, checkouts: list[Checkout], actor: str, now: datetime
) -> list[Outcome]:
    """Many paid checkouts fulfilled in one transaction, each as every path does it."""
    return [booking_flows.fulfil_in_tx(session, svc=svc, checkout=c, actor=actor, now=now) for c in checkouts]


class Recorder(Protocol):
    """Where the outcome of each booking goes (the job's JobResult)."""

    def add(self, booking_id: uuid.UUID | None, outcome: str, **detail: Any) -> object: ...

    def attempt(self, booking_id: uuid.UUID | None, work: Callable[[], str], **detail: Any) -> object: ...


def creation_windows(
    times: Sequence[datetime], *, per_window: int, before: timedelta, after: timedelta
) -> list[tuple[datetime, datetime]]:
    """Windows [start, end] of whole seconds, in order and not overlapping, that cover each time
    from `before` it to `after` it: times further apart than that are not bridged (no listing of
    the hours between two stale bookings), and a window holds about `per_window` of the times (so
    the windows can be listed in parallel)."""
    secs = sorted(int(t.timestamp()) for t in times)
    ahead, behind = int(before.total_seconds()), int(after.total_seconds())
    clusters: list[list[int]] = []
    for t in secs:
        if clusters and t - clusters[-1][-1] <= ahead + behind:
            clusters[-1].append(t)
        else:
            clusters.append([t])
    windows = []
    for cluster in clusters:
        cuts: list[int] = []  # a window starts at each; one second is never split
        count = 0
        for i, t in enumerate(cluster):
            if count >= per_window and t != cluster[i - 1]:
                cuts.append(t)
                count = 0
            count += 1
        bounds = [cluster[0] - ahead, *cuts, cluster[-1] + behind + 1]
        windows += [(_at(a), _at(b - 1)) for a, b in zip(bounds, bounds[1:], strict=False)]
    return windows


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def settle_stale_checkouts(
    svc: Services,
    stale: Sequence[StaleRow],
    *,
    now: datetime,
    dry_run: bool,
    out: Recorder,
    created_within: timedelta,
    job: str = "expire",
) -> None:
    """Settle Pending bookings whose checkout expired by `now` (each with a Checkout Session),
    recording each one's outcome in `out`. `created_within`: how long after its booking a
    session may have been made (the booking request's longest life)."""
    if stale:
        _Settlement(svc, stale, now=now, dry_run=dry_run, out=out, job=job).run(created_within)


class _Settlement:
    """One bulk settlement. Two pools: `stripe` (TUTORBOOK_JOB_STRIPE_CONCURRENCY threads: the
    listings, the expiries, and the follow-ups of each fulfilled batch: refunds, meeting links)
    and `db` (DB_THREADS threads: the batches' transactions). The calling thread
    only dispatches: it handles each answer as it arrives and records every outcome, so neither
    pool waits for the other."""

    def __init__(
        self, svc: Services, stale: Sequence[StaleRow], *, now: datetime, dry_run: bool, out: Recorder, job: str
    ):
        self.svc, self.now, self.dry_run, self.out, self.job = svc, now, dry_run, out, job
        self.actor = f"job:{job}"
        self.stale = stale
        self.by_checkout = {row.checkout_id: row for row in stale if row.checkout_id}
        self.seen: set[str] = set()
        self.failed_listings = 0
        self.to_cancel: list[StaleRow] = []
        self.to_fulfil: list[tuple[StaleRow, Checkout]] = []
        self.answers: queue.SimpleQueue[tuple[Future[Any], Callable[[Future[Any]], None]]] = queue.SimpleQueue()
        self.in_flight = 0

    def run(self, created_within: timedelta) -> None:
        windows = creation_windows(
            [row.created_at for row in self.stale],
            per_window=WINDOW_ROWS,
            before=CLOCK_MARGIN,
            after=created_within + CLOCK_MARGIN,
        )
        workers = self.svc.settings.job_stripe_concurrency
        with (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="settle") as self.stripe,
            ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="settle-db") as self.db,
        ):
            for status in STATUSES:
                for start, end in windows:
                    self._submit(self.stripe, self._listed, _listing, self.svc, start, end, status)
            self._drain()
            if self.failed_listings:
                log.warning(
                    "listing stale checkouts failed; unlisted ones stay Pending",
                    extra={"job": self.job, "failed": self.failed_listings, "listings": len(windows) * len(STATUSES)},
                )
            self._unlisted()  # in the same Stripe pool, so within the same bound (issue #33)
            self._drain()

    def _drain(self) -> None:
        """Handle each answer as it arrives until nothing is in flight."""
        while self.in_flight:
            future, handle = self.answers.get()
            self.in_flight -= 1
            handle(future)
            self._flush(full_only=self.in_flight > 0)

    def _submit(
        self, pool: ThreadPoolExecutor, handle: Callable[[Future[Any]], None], fn: Callable[..., Any], *args: Any
    ) -> None:
        """Run `fn(*args)` in `pool`; `handle(future)` runs in the calling thread once it is done."""
        future = pool.submit(fn, *args)
        self.in_flight += 1
        future.add_done_callback(lambda done: self.answers.put((done, handle)))

    def _listed(self, future: Future[list[Checkout]]) -> None:
        try:
            checkouts = future.result()
        except Exception as exc:  # Stripe unreachable (or refusing): its bookings stay Pending
            if not isinstance(exc, gw.GatewayError):
                log.exception("listing stale checkouts failed", extra={"job": self.job})
            self.failed_listings += 1
            return
        for checkout in checkouts:
            row = self.by_checkout.get(checkout.id)
            if row is None or checkout.id in self.seen:
                continue  # not a stale booking's (or listed already, by an overlapping status)
            self.seen.add(checkout.id)
            if self.dry_run:
                self.out.add(row.id, "would_fulfil" if checkout.paid else "would_cancel", checkout_id=checkout.id)
            elif checkout.status == "open":
                self._submit(
                    self.stripe, partial(self._closed, row), booking_flows.close_checkout, self.svc, checkout.id
                )
            elif checkout.paid:
                self.to_fulfil.append((row, checkout))
            else:
                self.to_cancel.append(row)

    def _closed(self, row: StaleRow, future: Future[Checkout | None]) -> None:
        try:
            paid = future.result()
        except gw.CheckoutNotFound:
            paid = None  # Stripe no longer knows it: nothing can be paid
        except gw.GatewayError:
            self.out.add(row.id, "stripe_unavailable", checkout_id=row.checkout_id)
            return
        except Exception:
            log.exception("expiring a checkout failed", extra={"job": self.job, "booking_id": str(row.id)})
            self.out.add(row.id, "error", checkout_id=row.checkout_id)
            return
        if paid is not None:
            self.to_fulfil.append((row, paid))
        else:
            self.to_cancel.append(row)

    def _flush(self, *, full_only: bool) -> None:
        """Hand full batches to the database thread; with `full_only` False, the rest too."""
        while len(self.to_fulfil) >= FULFIL_BATCH or (self.to_fulfil and not full_only):
            batch, self.to_fulfil = self.to_fulfil[:FULFIL_BATCH], self.to_fulfil[FULFIL_BATCH:]
            self._submit(self.db, partial(self._fulfilled, batch), self._fulfil, batch)
        while len(self.to_cancel) >= CANCEL_BATCH or (self.to_cancel and not full_only):
            rows, self.to_cancel = self.to_cancel[:CANCEL_BATCH], self.to_cancel[CANCEL_BATCH:]
            self._submit(self.db, partial(self._cancelled, rows), self._cancel_pending, [row.id for row in rows])

    # -- in the database thread ---------------------------------------------------------

    def _cancel_pending(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return self.svc.tx_sync(
            settling.cancel_many_if_pending,
            booking_ids=ids,
            reason=Reason.CHECKOUT_EXPIRED,
            actor=self.actor,
            now=self.now,
        )

    def _fulfil(self, batch: list[tuple[StaleRow, Checkout]]) -> tuple[list[Outcome], set[uuid.UUID]]:
        """The batch's paid checkouts fulfilled in one transaction, then the bookings still
        Pending (a refused payment) cancelled in another, as the per-row path does."""
        outcomes = self.svc.tx_sync(
            _fulfil_many, svc=self.svc, checkouts=[checkout for _, checkout in batch], actor=self.actor, now=utc_now()
        )
        todo = Followups()
        for outcome in outcomes:
            todo.extend(outcome.followups)
        if todo:  # refunds to send, meeting links to make: in the Stripe pool, while the next batch goes on
            self.stripe.submit(followups.run_sync, self.svc, todo)
        try:
            cancelled = self._cancel_pending([row.id for row, _ in batch])
        except Exception:
            log.exception("cancelling a batch failed", extra={"job": self.job, "rows": len(batch)})
            cancelled = set()
        return outcomes, cancelled

    # -- their answers, in the calling thread -------------------------------------------

    def _cancelled(self, rows: list[StaleRow], future: Future[set[uuid.UUID]]) -> None:
        try:
            moved = future.result()
        except Exception:
            log.exception("cancelling a batch failed", extra={"job": self.job, "rows": len(rows)})
            for row in rows:
                self.out.add(row.id, "error", checkout_id=row.checkout_id)
            return
        expired = Reason.CHECKOUT_EXPIRED.value
        for row in rows:
            self.out.add(row.id, expired if row.id in moved else "skipped", checkout_id=row.checkout_id)

    def _fulfilled(
        self, batch: list[tuple[StaleRow, Checkout]], future: Future[tuple[list[Outcome], set[uuid.UUID]]]
    ) -> None:
        try:
            outcomes, cancelled = future.result()
        except Exception:
            log.exception("fulfilling a batch failed; one by one", extra={"job": self.job, "rows": len(batch)})
            for row, checkout in batch:
                work = partial(
                    booking_flows.fulfil_stale,
                    self.svc,
                    booking_id=row.id,
                    checkout=checkout,
                    now=self.now,
                    job=self.job,
                )
                self.out.attempt(row.id, work, checkout_id=row.checkout_id)
            return
        expired = Reason.CHECKOUT_EXPIRED.value
        for (row, _), outcome in zip(batch, outcomes, strict=True):
            kind = f"{outcome.kind}, {expired}" if row.id in cancelled else outcome.kind
            self.out.add(row.id, kind, checkout_id=row.checkout_id)

    def _unlisted(self) -> None:
        """Bookings whose session no listing showed: the per-row path (one or two Stripe calls
        each), run in the Stripe pool like the rest; unless a listing failed (then Stripe is
        likely down, and the next run lists them again)."""
        for row in self.stale:
            if row.checkout_id is None or row.checkout_id in self.seen:
                continue
            if self.failed_listings:
                self.out.add(row.id, "stripe_unavailable", checkout_id=row.checkout_id)
                continue
            work = partial(
                booking_flows.settle_stale_checkout,
                self.svc,
                booking_id=row.id,
                checkout_id=row.checkout_id,
                now=self.now,
                dry_run=self.dry_run,
                job=self.job,
            )
            self._submit(self.stripe, partial(self._settled_alone, row), work)

    def _settled_alone(self, row: StaleRow, future: Future[str]) -> None:
        # attempt() records the outcome, or logs the error the work raised as "error".
        self.out.attempt(row.id, future.result, checkout_id=row.checkout_id)


def _listing(svc: Services, start: datetime, end: datetime, status: gw.CheckoutStatus) -> list[Checkout]:
    """Every session of `status` created in [start, end] (in a pool thread)."""
    return list(svc.gateway.list_checkouts_sync(created_since=start, created_until=end, status=status))
