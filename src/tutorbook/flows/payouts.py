"""Teachers' payouts (Stripe Connect): onboarding and the account's state read from Stripe,
each Stripe call between two short transactions (`tutorbook.teachers.payouts`)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from tutorbook.clock import utc_now
from tutorbook.errors import BadGateway, GatewayTimeout
from tutorbook.flows.services import Services
from tutorbook.identity import AuthUser
from tutorbook.payments import gateway as gw
from tutorbook.teachers import payouts
from tutorbook.teachers.payouts import PayoutStatus

log = logging.getLogger("tutorbook.flows")

PAYOUTS_PAGE = "/teacher/payouts"


def _unreachable(exc: Exception) -> Exception:
    if isinstance(exc, gw.GatewayTimeout):
        return GatewayTimeout("The payment provider did not answer; try again in a moment")
    return BadGateway("The payment provider could not be reached; try again in a moment")


async def onboard(svc: Services, *, teacher: AuthUser) -> str:
    """The Stripe-hosted onboarding URL for the teacher; their Express account is made once."""
    try:
        account_id = await svc.tx(payouts.account_id, teacher_id=teacher.id)
        if account_id is None:
            state = await svc.gateway.create_account(
                teacher_id=str(teacher.id), email=teacher.email, country=svc.settings.connect_country
            )
            kept = await svc.tx(payouts.attach, teacher_id=teacher.id, state=state, now=utc_now())
            account_id = kept.account_id
            log.info("connected account created", extra={"teacher_id": str(teacher.id), "account": account_id})
        base = svc.settings.public_url.rstrip("/") + PAYOUTS_PAGE
        assert account_id is not None
        return await svc.gateway.create_onboarding_link(
            account_id=account_id, refresh_url=f"{base}?refresh=1", return_url=f"{base}?returned=1"
        )
    except (gw.GatewayError, gw.CheckoutNotFound) as exc:
        raise _unreachable(exc) from exc


async def refresh(svc: Services, *, teacher: AuthUser) -> PayoutStatus:
    """The teacher's payout state read from Stripe now (returning from onboarding says nothing
    about whether it finished); the stored state when Stripe cannot be reached."""
    account_id = await svc.tx(payouts.account_id, teacher_id=teacher.id)
    if account_id is not None:
        try:
            state = await svc.gateway.retrieve_account(account_id)
        except (gw.GatewayError, gw.CheckoutNotFound):
            log.warning("connected account not read", extra={"teacher_id": str(teacher.id)})
        else:
            now = utc_now()
            await svc.tx(payouts.apply_state, state=state, as_of=now, now=now)
    return await svc.tx(payouts.status, teacher_id=teacher.id)


def refresh_sync(svc: Services, *, teacher_id: uuid.UUID, now: datetime) -> PayoutStatus:
    """`refresh` for the CLI and the jobs."""
    account_id = svc.tx_sync(payouts.account_id, teacher_id=teacher_id)
    if account_id is not None:
        state = svc.gateway.retrieve_account_sync(account_id)
        svc.tx_sync(payouts.apply_state, state=state, as_of=now, now=now)
    return svc.tx_sync(payouts.status, teacher_id=teacher_id)
