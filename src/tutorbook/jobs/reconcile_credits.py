"""Reconcile, for the package purchases (issue #28 item 9): each paid purchase as Stripe has it
against the ledger and the lessons' transfers. Findings (each `reported`, for a person):

- purchase_money_mismatch: what Stripe says was paid less refunded is not the ledger's money
  entries for the purchase (its `purchase` entry less its `refund` entries, a refund Stripe has
  not answered yet left out of both sides);
- purchase_transfer_mismatch: the transfers of the purchase's `transfer_group` at Stripe (less
  their reversals) are not what its completed lessons' transfers recorded;
- payout_missing: a completed lesson of the purchase whose teacher has no transfer recorded yet
  (no account able to receive payouts, Stripe refusing or unreachable: the `complete` job tries
  again each run); the recorded shares are checked against the price less the fee, too.

A purchase whose refunds are still in flight is checked for transfers only.
"""

from __future__ import annotations

from tutorbook.bookings import lesson_payouts
from tutorbook.flows.services import Services
from tutorbook.jobs.result import JobResult
from tutorbook.payments import gateway as gw


def check_purchases(svc: Services, result: JobResult, *, limit: int = 500) -> None:
    """Compare every paid purchase (the newest `limit`) with Stripe; add a finding per mismatch."""
    fee_percent = svc.settings.platform_fee_percent
    for purchase_id in svc.tx_sync(lesson_payouts.paid_purchases, limit=limit):
        subject = f"purchase:{purchase_id}"
        books = svc.tx_sync(lesson_payouts.books_of, purchase_id=purchase_id, fee_percent=fee_percent)
        if books is None:
            continue
        try:
            split = svc.gateway.payment_split_sync(books.payment_intent)
            transfers = svc.gateway.list_transfers_sync(transfer_group=books.transfer_group)
        except (gw.GatewayError, gw.CheckoutNotFound):
            result.add(None, "stripe_unavailable", kind="purchase_unchecked", subject=subject)
            continue
        if split is None:
            result.add(None, "reported", kind="purchase_money_mismatch", subject=subject)
            continue
        if not books.refunds_in_flight and split.amount - split.refunded != books.money:
            result.add(None, "reported", kind="purchase_money_mismatch", subject=subject)
        at_stripe = sum(t.amount - t.amount_reversed for t in transfers)
        if at_stripe != books.transferred:
            result.add(None, "reported", kind="purchase_transfer_mismatch", subject=subject)
        for booking_id in books.unpaid_lessons:
            result.add(booking_id, "reported", kind="payout_missing", subject=subject)
        if not books.unpaid_lessons and books.transferred != books.shares:
            result.add(None, "reported", kind="purchase_transfer_mismatch", subject=subject)
