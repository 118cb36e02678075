"""What a job run did: one item per booking (or refund) it looked at, and the outcome."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tutorbook.jobs")

# Called as progress(stage, count) while a long run goes on, e.g. ("handled", 200).
Progress = Callable[[str, int], None]
PROGRESS_EVERY = 100


@dataclass(frozen=True)
class Item:
    """One thing a job handled. `kind` is set on reconcile's findings (a mismatch)."""

    booking_id: uuid.UUID | None
    outcome: str
    kind: str | None = None
    checkout_id: str | None = None
    refund_id: uuid.UUID | str | None = None  # ours, or Stripe's (re_…) for a Connect finding
    subject: str | None = None  # what it was when not a booking: "purchase:<id>", "lot:<id>" (issue #28)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "bookingId": str(self.booking_id) if self.booking_id else None,
            "outcome": self.outcome,
            "kind": self.kind,
            "checkoutId": self.checkout_id,
            "refundId": str(self.refund_id) if self.refund_id else None,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        return out


@dataclass
class JobResult:
    job: str
    dry_run: bool = False
    items: list[Item] = field(default_factory=list)
    progress: Progress | None = field(default=None, repr=False)

    def add(self, booking_id: uuid.UUID | None, outcome: str, **detail: Any) -> Item:
        """Record (and log) one handled booking: at INFO when someone may have to look (a
        reconcile finding, an error, Stripe unavailable), else at DEBUG. A routine move is in the
        booking's history already (actor `job:<name>`), and 100,000 INFO lines cost seconds."""
        item = Item(booking_id, outcome, **detail)
        self.items.append(item)
        level = logging.INFO if item.kind is not None or outcome in UNSETTLED else logging.DEBUG
        if log.isEnabledFor(level):
            extra = {
                "job": self.job,
                "dry_run": self.dry_run,
                **{k: v for k, v in item.to_dict().items() if v},
            }
            log.log(level, "job item", extra=extra)
        if self.progress is not None and len(self.items) % PROGRESS_EVERY == 0:
            self.progress("handled", len(self.items))
        return item

    def attempt(self, booking_id: uuid.UUID | None, work: Callable[[], str], **detail: Any) -> Item:
        """Record the outcome of `work()`; an exception is logged as outcome "error", so one
        bad booking does not stop the run (the next run tries it again)."""
        try:
            outcome = work()
        except Exception:
            log.exception("job item failed", extra={"job": self.job, "booking_id": str(booking_id)})
            outcome = "error"
        return self.add(booking_id, outcome, **detail)

    def counts(self) -> dict[str, int]:
        """How many items ended in each outcome."""
        return dict(sorted(Counter(i.outcome for i in self.items).items()))

    @property
    def mismatches(self) -> list[Item]:
        """Reconcile's findings: disagreements between Stripe and the database."""
        return [i for i in self.items if i.kind is not None]

    @property
    def unsettled(self) -> list[Item]:
        """Findings this run could not repair (an operator has to look)."""
        return [i for i in self.mismatches if i.outcome in UNSETTLED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "dryRun": self.dry_run,
            "counts": self.counts(),
            "mismatches": len(self.mismatches),
            "unsettled": len(self.unsettled),
            "items": [i.to_dict() for i in self.items],
        }


# Outcomes that leave a finding open: reported for a person, or waiting for Stripe.
UNSETTLED = frozenset({"reported", "refund_pending", "stripe_unavailable", "error"})
