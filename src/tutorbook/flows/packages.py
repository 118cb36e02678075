"""Buying a lesson package (issue #28) across domains: the purchase recorded, its Checkout
Session made at Stripe between transactions, settled exactly once (webhook, success page, expire
job: `credits.purchases.settle_paid`), given up when left or expired; the unused credit refunded
through Stripe after the ledger recorded it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook import currencies
from tutorbook.bookings.checkout import CHECKOUT_TEMPLATE, Checkout
from tutorbook.clock import utc_now
from tutorbook.config import CHECKOUT_MARGIN_MINUTES
from tutorbook.credits import purchases
from tutorbook.credits.errors import PurchaseNotFound
from tutorbook.credits.models import CreditEntry, CreditPurchase
from tutorbook.errors import BadGateway, Conflict, GatewayTimeout
from tutorbook.flows.services import Services
from tutorbook.identity import AuthUser
from tutorbook.payments import gateway as gw

log = logging.getLogger("tutorbook.flows")


def purchase_urls(*, public_url: str, purchase_id: uuid.UUID) -> tuple[str, str]:
    """The same success and cancel pages as a booking's, `type=package-purchase`."""
    base = public_url.rstrip("/")
    kind = purchases.PURCHASE_TYPE
    success = f"{base}/payment/success?session_id={CHECKOUT_TEMPLATE}&type={kind}"
    cancel = f"{base}/payment/cancel?session_id={CHECKOUT_TEMPLATE}&type={kind}&purchase_id={purchase_id}"
    return success, cancel


async def buy(svc: Services, *, parent: AuthUser, package_id: uuid.UUID) -> CreditPurchase:
    """Record an open purchase and make its Checkout Session; the purchase with its URL."""
    now = utc_now()
    expires = now + timedelta(minutes=svc.settings.checkout_ttl_minutes + CHECKOUT_MARGIN_MINUTES)
    opened = await svc.tx(
        purchases.open_purchase, parent_id=parent.id, package_id=package_id, checkout_expires_at=expires, now=now
    )
    purchase = opened.purchase
    success, cancel = purchase_urls(public_url=svc.settings.public_url, purchase_id=purchase.id)
    money = currencies.money(purchase.price, purchase.currency)
    try:
        checkout = await svc.gateway.create_purchase_checkout(
            purchase_id=str(purchase.id),
            amount=purchase.price,
            currency=purchase.currency,
            product_name=f"{purchase.lessons} × {purchase.duration_minutes}-minute lessons with "
            f"{opened.teacher_name} ({money})",
            customer_email=parent.email,
            success_url=success,
            cancel_url=cancel,
            expires_at=expires,
            transfer_group=purchase.transfer_group,
        )
    except (gw.GatewayError, gw.CheckoutNotFound) as exc:
        log.warning("package checkout creation failed", extra={"purchase_id": str(purchase.id)})
        await svc.tx(purchases.give_up, purchase_id=purchase.id, expired=False, now=utc_now())
        raise (GatewayTimeout if isinstance(exc, gw.GatewayTimeout) else BadGateway)() from exc
    return await svc.tx(
        purchases.attach_checkout,
        purchase_id=purchase.id,
        checkout_id=checkout.id,
        url=checkout.url,
        expires_at=checkout.expires_at,
    )


def is_purchase(checkout: Checkout) -> bool:
    return (checkout.metadata or {}).get("type") == purchases.PURCHASE_TYPE


def settle_in_tx(session: Session, *, checkout: Checkout, actor: str, now: datetime) -> str:
    """`credits.purchases.settle` of a checkout Stripe reported."""
    return purchases.settle(
        session,
        checkout_id=checkout.id,
        metadata=checkout.metadata,
        paid=checkout.paid,
        payment_intent=checkout.payment_intent,
        amount_total=checkout.amount_total,
        currency=checkout.currency,
        actor=actor,
        now=now,
    )


def record_charge_sync(svc: Services, *, purchase_id: uuid.UUID, payment_intent: str | None) -> None:
    """Keep the purchase's charge id (each lesson's transfer names it as `source_transaction`);
    best effort: a purchase without one is read again by the next settlement."""
    if not payment_intent:
        return
    try:
        split = svc.gateway.payment_split_sync(payment_intent)
    except gw.GatewayError:
        log.warning("package charge not read", extra={"purchase_id": str(purchase_id)})
        return
    if split is not None:
        svc.tx_sync(purchases.set_charge, purchase_id=purchase_id, charge_id=split.charge_id)


async def confirm(svc: Services, *, parent: AuthUser, checkout_id: str) -> CreditPurchase:
    """The success page's call for a package: re-read the checkout at Stripe and settle it."""
    try:
        checkout = await svc.gateway.retrieve_checkout(checkout_id)
    except gw.CheckoutNotFound as exc:
        raise PurchaseNotFound() from exc
    except gw.GatewayError as exc:
        raise BadGateway("The payment provider could not be reached; try again in a moment") from exc
    ref = (checkout.metadata or {}).get("purchase_id")
    purchase = await svc.tx(purchases.by_reference, checkout_id=checkout.id, reference=ref)
    if purchase is None or not is_purchase(checkout):
        raise PurchaseNotFound()
    await svc.tx(purchases.own, parent_id=parent.id, purchase_id=purchase.id)
    done = await svc.tx(settle_in_tx, checkout=checkout, actor=parent.actor, now=utc_now())
    if done in ("amount_mismatch", "other_checkout"):
        raise Conflict("This payment does not match the package; contact us")
    settled = await svc.tx(purchases.must_get, purchase.id)
    if settled.stripe_charge_id is None and settled.stripe_payment_intent_id:
        await asyncio.to_thread(
            record_charge_sync, svc, purchase_id=settled.id, payment_intent=settled.stripe_payment_intent_id
        )
    return settled


async def cancel(svc: Services, *, parent: AuthUser, purchase_id: uuid.UUID) -> CreditPurchase:
    """The cancel page's call for a package: expire its checkout at Stripe, then give it up; a
    checkout Stripe says was paid is settled instead. Reloading is a no-op."""
    purchase = await svc.tx(purchases.own, parent_id=parent.id, purchase_id=purchase_id)
    if purchase.state != "open":
        return purchase
    if purchase.stripe_checkout_id:
        try:
            await svc.gateway.expire_checkout(purchase.stripe_checkout_id, reason="payment_cancelled")
        except gw.CheckoutNotOpen:
            checkout = await svc.gateway.retrieve_checkout(purchase.stripe_checkout_id)
            if checkout.paid:
                await svc.tx(settle_in_tx, checkout=checkout, actor=parent.actor, now=utc_now())
                return await svc.tx(purchases.must_get, purchase_id)
        except gw.CheckoutNotFound:
            pass
        except gw.GatewayError as exc:
            raise BadGateway("The payment provider could not be reached; try again in a moment") from exc
    await svc.tx(purchases.give_up, purchase_id=purchase_id, expired=False, now=utc_now())
    return await svc.tx(purchases.must_get, purchase_id)


def settle_stale_sync(svc: Services, *, purchase_id: uuid.UUID, checkout_id: str | None, now: datetime) -> str:
    """An open purchase whose checkout expired by our clock (the expire job): close the checkout
    at Stripe; paid -> settled, else expired. Stripe unreachable leaves it open for the next run."""
    if checkout_id is None:
        return (
            "expired" if svc.tx_sync(purchases.give_up, purchase_id=purchase_id, expired=True, now=now) else "skipped"
        )
    try:
        svc.gateway.expire_checkout_sync(checkout_id, reason="checkout_expired")
        paid = None
    except gw.CheckoutNotOpen:
        checkout = svc.gateway.retrieve_checkout_sync(checkout_id)
        paid = checkout if checkout.paid else None
    except gw.CheckoutNotFound:
        paid = None
    except gw.GatewayError:
        return "stripe_unavailable"
    if paid is not None:
        done = svc.tx_sync(settle_in_tx, checkout=paid, actor="job:expire", now=now)
        record_charge_sync(svc, purchase_id=purchase_id, payment_intent=paid.payment_intent)
        return done
    if svc.tx_sync(purchases.give_up, purchase_id=purchase_id, expired=True, now=now):
        return "expired"
    # Given up meanwhile (Stripe's checkout.session.expired webhook came first), or paid.
    return svc.tx_sync(purchases.must_get, purchase_id).state


def send_refund_sync(svc: Services, entry: CreditEntry, purchase: CreditPurchase) -> str:
    """Send a refund entry's partial refund to Stripe (its key: the entry) and record the answer."""
    assert purchase.stripe_payment_intent_id is not None
    try:
        result = svc.gateway.refund_sync(
            payment_intent=purchase.stripe_payment_intent_id,
            amount=-entry.amount,
            refund_key=f"credit-refund-{purchase.id}-{entry.id}",
            booking_id=str(purchase.id),
        )
    except gw.RefundRefused:
        svc.tx_sync(purchases.refund_sent, entry_id=entry.id, refund_id=None, status="failed")
        return "failed"
    svc.tx_sync(purchases.refund_sent, entry_id=entry.id, refund_id=result.id, status=result.status)
    return result.status


async def refund_unused(svc: Services, *, user: AuthUser, purchase_id: uuid.UUID, admin: bool) -> CreditPurchase:
    """Refund a purchase's unused, unexpired lessons: recorded in the ledger in one transaction,
    then sent to Stripe as a partial refund; any earlier refund of it still pending is sent again."""
    await svc.tx(
        purchases.refund_unused,
        purchase_id=purchase_id,
        user_id=None if admin else user.id,
        actor=user.actor,
        now=utc_now(),
    )
    purchase = await svc.tx(purchases.must_get, purchase_id)
    for entry in await svc.tx(purchases.pending_refunds, purchase_id=purchase_id):
        try:
            await asyncio.to_thread(send_refund_sync, svc, entry, purchase)
        except gw.GatewayError as exc:
            raise BadGateway(
                "The refund is recorded; the payment provider could not be reached, try again in a moment"
            ) from exc
    return await svc.tx(purchases.must_get, purchase_id)
