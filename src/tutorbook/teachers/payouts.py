"""Teachers' payouts: their Stripe connected account and its state, one transaction each.

The account is created at Stripe (`tutorbook.flows.payouts`) and its state arrives here either
read from Stripe or from an `account.updated` event: state older than what is held (events
arrive in any order) is ignored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook.teachers.models import PayoutAccount


@dataclass(frozen=True)
class AccountState:
    """What Tutorbook needs of a Stripe connected account (built by the payments gateway)."""

    id: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    currently_due: list[str] = field(default_factory=list)
    disabled_reason: str | None = None


@dataclass(frozen=True)
class PayoutStatus:
    """A teacher's payout state as the API and the page show it."""

    connected: bool
    account_id: str | None
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    currently_due: list[str]
    disabled_reason: str | None

    @property
    def enabled(self) -> bool:
        return self.charges_enabled and self.payouts_enabled


NOT_CONNECTED = PayoutStatus(False, None, False, False, False, [], None)


def get(session: Session, teacher_id: uuid.UUID) -> PayoutAccount | None:
    return session.get(PayoutAccount, teacher_id)


def status(session: Session, *, teacher_id: uuid.UUID) -> PayoutStatus:
    """The teacher's payout state (not connected when there is no account yet)."""
    account = get(session, teacher_id)
    if account is None:
        return NOT_CONNECTED
    return PayoutStatus(
        True,
        account.stripe_account_id,
        account.charges_enabled,
        account.payouts_enabled,
        account.details_submitted,
        list(account.currently_due or []),
        account.disabled_reason,
    )


def account_id(session: Session, *, teacher_id: uuid.UUID) -> str | None:
    account = get(session, teacher_id)
    return account.stripe_account_id if account else None


def destination(session: Session, *, teacher_id: uuid.UUID) -> str | None:
    """The account a destination charge for this teacher pays, when it can take one."""
    account = get(session, teacher_id)
    if account is None or not (account.charges_enabled and account.payouts_enabled):
        return None
    return account.stripe_account_id


def attach(session: Session, *, teacher_id: uuid.UUID, state: AccountState, now: datetime) -> PayoutStatus:
    """Keep the teacher's newly created account (the first one kept wins: Stripe's idempotency
    key makes a retried creation answer the same account)."""
    if get(session, teacher_id) is None:
        session.add(
            PayoutAccount(
                teacher_id=teacher_id,
                stripe_account_id=state.id,
                charges_enabled=state.charges_enabled,
                payouts_enabled=state.payouts_enabled,
                details_submitted=state.details_submitted,
                currently_due=list(state.currently_due),
                disabled_reason=state.disabled_reason,
                state_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
    return status(session, teacher_id=teacher_id)


# What apply_state did (the webhook's outcome is `account_` and this: bookings.outcomes.OutcomeKind).
AccountChange = Literal["updated", "stale", "unknown_account"]


def apply_state(session: Session, *, state: AccountState, as_of: datetime, now: datetime) -> AccountChange:
    """Store an account's state as of `as_of`: "updated", "stale" (older than what is held)
    or "unknown_account"."""
    account = session.scalar(
        sa.select(PayoutAccount).where(PayoutAccount.stripe_account_id == state.id).with_for_update()
    )
    if account is None:
        return "unknown_account"
    if as_of < account.state_at:
        return "stale"
    account.charges_enabled = state.charges_enabled
    account.payouts_enabled = state.payouts_enabled
    account.details_submitted = state.details_submitted
    account.currently_due = list(state.currently_due)
    account.disabled_reason = state.disabled_reason
    account.state_at = as_of
    account.updated_at = now
    return "updated"


def teacher_of_account(session: Session, *, account_id: str) -> uuid.UUID | None:
    return session.scalar(sa.select(PayoutAccount.teacher_id).where(PayoutAccount.stripe_account_id == account_id))
