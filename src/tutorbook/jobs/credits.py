"""The wallet's periodic work (issue #28): package checkouts past their expiry settled or given up
(part of the `expire` job), and the `credits` job: lots past their validity expired (an `expire`
entry), the parents told 30 and 7 days before (each once), a paid purchase's charge id read if
it is missing, refunds of unused credit that Stripe has not accepted yet sent again."""

from __future__ import annotations

from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.credits import ledger, purchases
from tutorbook.credits import service as credits
from tutorbook.credits.models import CreditPurchase
from tutorbook.flows import packages
from tutorbook.flows.services import Services
from tutorbook.jobs.result import JobResult, Progress

WARN_DAYS = (30, 7)


def settle_stale_purchases(svc: Services, *, now: datetime, dry_run: bool, out: JobResult) -> None:
    """Open purchases past their checkout's expiry: paid at Stripe -> settled, else expired."""
    for purchase_id, checkout_id in svc.tx_sync(purchases.stale, now=now):
        if dry_run:
            out.add(None, "would_settle_purchase", subject=f"purchase:{purchase_id}")
            continue
        out.attempt(
            None,
            partial(packages.settle_stale_sync, svc, purchase_id=purchase_id, checkout_id=checkout_id, now=now),
            subject=f"purchase:{purchase_id}",
        )


def credits_job(svc: Services, *, now: datetime, dry_run: bool = False, progress: Progress | None = None) -> JobResult:
    result = JobResult("credits", dry_run=dry_run, progress=progress)
    for lot_id in svc.tx_sync(ledger.due_to_expire, now=now):
        if dry_run:
            result.add(None, "would_expire", subject=f"lot:{lot_id}")
        else:
            result.attempt(
                None, partial(svc.tx_sync, credits.expire_one, lot_id=lot_id, now=now), subject=f"lot:{lot_id}"
            )
    for days in WARN_DAYS:
        for item in svc.tx_sync(ledger.warnings_due, now=now, days=days):
            if dry_run:
                result.add(None, f"would_warn_{days}", subject=f"lot:{item.lot_id}")
            else:
                result.attempt(
                    None,
                    partial(svc.tx_sync, credits.warn_one, item=item, days=days, now=now),
                    subject=f"lot:{item.lot_id}",
                )
    if dry_run:
        return result
    for purchase in svc.tx_sync(_without_charge):
        result.attempt(
            None,
            partial(_charge, svc, purchase),
            subject=f"purchase:{purchase.id}",
        )
    for entry in svc.tx_sync(purchases.pending_refunds):
        if entry.purchase_id is None:
            continue
        purchase = svc.tx_sync(purchases.must_get, entry.purchase_id)
        result.attempt(
            None, partial(packages.send_refund_sync, svc, entry, purchase), subject=f"credit-entry:{entry.id}"
        )
    return result


def _without_charge(session: Session) -> list[CreditPurchase]:
    return list(
        session.scalars(
            sa.select(CreditPurchase)
            .where(
                CreditPurchase.state == "paid",
                CreditPurchase.stripe_charge_id.is_(None),
                CreditPurchase.stripe_payment_intent_id.is_not(None),
            )
            .limit(100)
        )
    )


def _charge(svc: Services, purchase: CreditPurchase) -> str:
    packages.record_charge_sync(svc, purchase_id=purchase.id, payment_intent=purchase.stripe_payment_intent_id)
    return "charge_recorded"
