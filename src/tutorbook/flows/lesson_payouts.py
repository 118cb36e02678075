"""Paying teachers per delivered lesson of a package (issue #28 item 6): each transfer asked of
Stripe between two short transactions (`tutorbook.bookings.lesson_payouts`): the lesson's fee and
destination fixed, the transfer (its key the booking's, so Stripe makes it once whoever asks
again), the transfer recorded."""

from __future__ import annotations

import logging
from datetime import datetime

from tutorbook.bookings import lesson_payouts
from tutorbook.bookings.lesson_payouts import PayoutDue
from tutorbook.flows.services import Services
from tutorbook.payments import gateway as gw
from tutorbook.payments.port import Transfer

log = logging.getLogger("tutorbook.flows")


def due_sync(svc: Services, *, limit: int = 100) -> list[PayoutDue]:
    """The lessons whose teacher is to be paid now (their fee and destination fixed)."""
    return svc.tx_sync(lesson_payouts.due, fee_percent=svc.settings.platform_fee_percent, limit=limit)


def pay_sync(svc: Services, due: PayoutDue, *, now: datetime) -> str:
    """Transfer one lesson's share (or adopt the transfer made for it already) and record it:
    `transferred`, `recorded_already` (another run recorded it first), `refused` (Stripe will
    not: more than is left of the purchase's charge, an account that cannot receive transfers;
    reconcile reports the lesson) or `stripe_unavailable` (tried again at the next run)."""
    try:
        transfer = _made_already(svc, due) or _transfer(svc, due)
    except gw.Refused as exc:
        log.warning("lesson payout refused", extra={"booking_id": str(due.booking_id), "error": str(exc)[:200]})
        return "refused"
    except (gw.GatewayError, gw.CheckoutNotFound):
        return "stripe_unavailable"
    recorded = svc.tx_sync(
        lesson_payouts.record, booking_id=due.booking_id, transfer_id=transfer.id, amount=transfer.amount, now=now
    )
    return "transferred" if recorded else "recorded_already"


def _made_already(svc: Services, due: PayoutDue) -> Transfer | None:
    """The transfer made for this lesson whose record was lost (a crash after Stripe answered):
    adopted, not made again, since the idempotency key protects only for Stripe's 24 hours."""
    for transfer in svc.gateway.list_transfers_sync(transfer_group=due.transfer_group):
        if transfer.metadata.get("booking_id") == str(due.booking_id):
            return transfer
    return None


def _transfer(svc: Services, due: PayoutDue) -> Transfer:
    return svc.gateway.create_transfer_sync(
        amount=due.amount,
        currency=due.currency,
        destination=due.destination,
        source_transaction=due.source_transaction,
        transfer_group=due.transfer_group,
        idempotency_key=due.idempotency_key,
        metadata={"booking_id": str(due.booking_id), "purchase_id": str(due.purchase_id), "type": "lesson-payout"},
    )
