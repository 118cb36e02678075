"""Lesson packages and the family credit wallet (issue #28): a teacher's packages, buying one,
the family's balances and ledger, refunding unused credit, and the operator's view and adjustments."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Query
from sqlalchemy.orm import Session

from tutorbook.api.deps import AdminUser, ParentUser, ServicesDep, StaffOrParent, TeacherUser
from tutorbook.api.routing import Router
from tutorbook.clock import utc_now
from tutorbook.credits import packages, purchases
from tutorbook.credits import service as credits
from tutorbook.credits.schemas import (
    AdjustIn,
    CreditsOut,
    EntryOut,
    LedgerPage,
    PackageIn,
    PackageOut,
    PurchaseOut,
    WalletOut,
    package_out,
    purchase_out,
)
from tutorbook.errors import Forbidden
from tutorbook.flows import packages as package_flows
from tutorbook.identity import Role
from tutorbook.schemas import Envelope, Reply, errors, ok
from tutorbook.validation import ExternalId, Line

PackageId = Annotated[uuid.UUID, Path(alias="packageId")]
PurchaseId = Annotated[uuid.UUID, Path(alias="purchaseId")]
TeacherId = Annotated[uuid.UUID, Path(alias="teacherId")]
ParentId = Annotated[uuid.UUID, Path(alias="parentId")]
StripeSessionId = Annotated[ExternalId, Path(alias="stripeSessionId", description="The Checkout Session id, `cs_…`")]

teacher_router = Router(prefix="/api/Teachers", tags=["Packages"], responses=errors(400, 401, 403, 404, 422))
router = Router(prefix="/api/Packages", tags=["Packages"], responses=errors(400, 401, 403, 404, 409, 422, 502, 504))
wallet = Router(prefix="/api/Credits", tags=["Credits"], responses=errors(400, 401, 403, 422))
admin = Router(prefix="/api/Admin", tags=["Admin"], responses=errors(400, 401, 403, 404, 409, 422))


@teacher_router.post("/me/packages", response_model=Envelope[PackageOut], status_code=201)
async def create_package(body: PackageIn, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Sell a package: `lessons` lessons of `durationMinutes` for `price` (minor units of your
    currency), valid `validDays` days (30-730) once bought."""
    offer = await svc.tx(
        packages.create,
        teacher_id=user.id,
        lessons=body.lessons,
        duration_minutes=body.duration_minutes,
        price=body.price,
        valid_days=body.valid_days,
        now=utc_now(),
    )
    return ok(package_out(offer), "Package created")


@teacher_router.delete("/me/packages/{packageId}", response_model=Envelope[bool])
async def retire_package(package_id: PackageId, user: TeacherUser, svc: ServicesDep) -> Reply:
    """Stop selling a package; credits already bought stay valid."""
    await svc.tx(packages.retire, teacher_id=user.id, package_id=package_id, now=utc_now())
    return ok(True, "Package no longer sold")


@teacher_router.get("/{teacherId}/packages", response_model=Envelope[list[PackageOut]])
async def teacher_packages(teacher_id: TeacherId, svc: ServicesDep) -> Reply:
    """A teacher's packages on sale, each with its per-lesson price and the saving against single lessons."""
    return ok(await svc.read(_offers, teacher_id=teacher_id))


def _offers(session: Session, *, teacher_id: uuid.UUID) -> list[PackageOut]:
    return [package_out(o) for o in packages.offers(session, teacher_id=teacher_id)]


@router.post("/{packageId}/buy", response_model=Envelope[PurchaseOut], status_code=201)
async def buy(package_id: PackageId, user: ParentUser, svc: ServicesDep) -> Reply:
    """Buy a package: `data.checkoutUrl` is where to pay (Stripe Checkout, as for a booking)."""
    purchase = await package_flows.buy(svc, parent=user, package_id=package_id)
    return ok(purchase_out(purchase), "Purchase created; complete the payment to add the credits")


@router.post("/confirm-payment/{stripeSessionId}", response_model=Envelope[PurchaseOut])
async def confirm_payment(stripe_session_id: StripeSessionId, user: ParentUser, svc: ServicesDep) -> Reply:
    """The success page's call for a package: re-reads the checkout at Stripe; paid -> credits added (once)."""
    purchase = await package_flows.confirm(svc, parent=user, checkout_id=stripe_session_id)
    paid = purchase.state == "paid"
    return ok(purchase_out(purchase), "Credits added" if paid else "Waiting for the payment to be confirmed")


@router.post("/purchases/{purchaseId}/cancel", response_model=Envelope[PurchaseOut])
async def cancel_purchase(purchase_id: PurchaseId, user: ParentUser, svc: ServicesDep) -> Reply:
    """The cancel page's call for a package: its checkout expired, nothing bought (again: no-op)."""
    purchase = await package_flows.cancel(svc, parent=user, purchase_id=purchase_id)
    return ok(purchase_out(purchase), "Purchase cancelled" if purchase.state != "paid" else "Already paid")


@router.post("/purchases/{purchaseId}/refund", response_model=Envelope[PurchaseOut])
async def refund_unused(purchase_id: PurchaseId, user: StaffOrParent, svc: ServicesDep) -> Reply:
    """Refund the purchase's unused, unexpired lessons (lessons left × the per-lesson price) to
    the card that paid; the parent or an operator. 409 when none is left."""
    if user.role == Role.TEACHER:
        raise Forbidden("Only the parent or an operator refunds a purchase")
    purchase = await package_flows.refund_unused(svc, user=user, purchase_id=purchase_id, admin=user.role == Role.ADMIN)
    return ok(purchase_out(purchase), "Unused credit refunded")


@wallet.get("", response_model=Envelope[CreditsOut])
async def my_credits(user: ParentUser, svc: ServicesDep) -> Reply:
    """The family's usable credits per teacher and session length, with the earliest expiry."""
    return ok(await svc.read(credits.credits_of, parent_id=user.id, now=utc_now()))


@wallet.get("/ledger", response_model=Envelope[LedgerPage])
async def my_ledger(
    user: ParentUser,
    svc: ServicesDep,
    page_size: int = Query(default=20, ge=1, le=100, alias="pageSize"),
    after: Annotated[Line | None, Query(max_length=30, description="the previous page's nextCursor")] = None,
) -> Reply:
    """Every entry of the family's ledger, newest first; pass each page's `nextCursor` as `after`."""
    return ok(await svc.read(credits.ledger_page, parent_id=user.id, page_size=page_size, after=after))


@wallet.get("/purchases", response_model=Envelope[list[PurchaseOut]])
async def my_purchases(user: ParentUser, svc: ServicesDep) -> Reply:
    """The family's package purchases, newest first."""
    return ok(await svc.read(_purchases, parent_id=user.id))


def _purchases(session: Session, *, parent_id: uuid.UUID) -> list[PurchaseOut]:
    return [purchase_out(p) for p in purchases.of_parent(session, parent_id=parent_id)]


@admin.get("/families/{parentId}/credits", response_model=Envelope[WalletOut])
async def family_wallet(parent_id: ParentId, user: AdminUser, svc: ServicesDep) -> Reply:
    """A family's wallet: balances, the last 100 ledger entries, its purchases."""
    return ok(await svc.read(credits.wallet_of, parent_id=parent_id, now=utc_now()))


@admin.post("/families/{parentId}/credits", response_model=Envelope[list[EntryOut]], status_code=201)
async def adjust_credits(parent_id: ParentId, body: AdjustIn, user: AdminUser, svc: ServicesDep) -> Reply:
    """Grant (+) or remove (-) credits of a teacher and length, with a reason (`adjust` entries)."""
    done = await svc.tx(credits.adjust, actor=user.actor, parent_id=parent_id, body=body, now=utc_now())
    return ok(done, "Credits adjusted")
