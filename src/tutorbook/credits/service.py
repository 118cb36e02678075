"""The wallet's use cases for people: a family's balances and ledger page, an operator's grant or
removal, the expiry job's work. Sync, one transaction each (the caller's session)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.accounts.models import User
from tutorbook.credits import ledger, purchases
from tutorbook.credits.models import EntryKind
from tutorbook.credits.schemas import (
    AdjustIn,
    CreditsOut,
    EntryOut,
    LedgerPage,
    WalletOut,
    balance_out,
    entry_out,
    purchase_out,
)
from tutorbook.errors import NotFound, Unprocessable
from tutorbook.notifications import service as notices
from tutorbook.teachers import service as teachers
from tutorbook.validation import is_single_line

CURSOR_PREFIX = "e"


def credits_of(session: Session, *, parent_id: uuid.UUID, now: datetime) -> CreditsOut:
    balances = ledger.wallet(session, parent_id=parent_id, now=now)
    names = {b.teacher_id: _name(session, b.teacher_id) for b in balances}
    return CreditsOut(
        balances=[balance_out(b, names[b.teacher_id]) for b in balances], total=sum(b.lessons for b in balances)
    )


def _name(session: Session, user_id: uuid.UUID) -> str | None:
    user = session.get(User, user_id)
    return user.full_name if user else None


def decode_cursor(value: str | None) -> int | None:
    if not value:
        return None
    if value.startswith(CURSOR_PREFIX) and value[1:].isdigit() and len(value) < 20:
        return int(value[1:])
    raise Unprocessable("This page link is broken", data=[{"field": "after", "message": "bad cursor"}])


def ledger_page(session: Session, *, parent_id: uuid.UUID, page_size: int, after: str | None) -> LedgerPage:
    """The family's entries, newest first; keyset-paged (the cursor: the last entry's id)."""
    rows = ledger.entries(session, parent_id=parent_id, limit=page_size + 1, before=decode_cursor(after))
    page = rows[:page_size]
    nxt = f"{CURSOR_PREFIX}{page[-1].id}" if len(rows) > page_size and page else None
    return LedgerPage(items=[entry_out(e) for e in page], page_size=page_size, next_cursor=nxt)


def family(session: Session, parent_id: uuid.UUID) -> User:
    user = session.get(User, parent_id)
    if user is None or user.role != "Parent":
        raise NotFound("Parent not found")
    return user


def wallet_of(session: Session, *, parent_id: uuid.UUID, now: datetime, limit: int = 100) -> WalletOut:
    """A family's wallet for the operator: balances, the last entries, the purchases."""
    family(session, parent_id)
    return WalletOut(
        parent_id=parent_id,
        credits=credits_of(session, parent_id=parent_id, now=now),
        ledger=[entry_out(e) for e in ledger.entries(session, parent_id=parent_id, limit=limit)],
        purchases=[purchase_out(p) for p in purchases.of_parent(session, parent_id=parent_id)],
    )


def adjust(session: Session, *, actor: str, parent_id: uuid.UUID, body: AdjustIn, now: datetime) -> list[EntryOut]:
    """An operator grants (+) or removes (-) credits with a reason: `adjust` entries, the admin
    the actor. A grant is a lot of its own, valid `validDays`; a removal takes from the lots
    expiring first (409 when the family holds fewer)."""
    family(session, parent_id)
    reason = " ".join(body.reason.split())
    if not reason or not is_single_line(reason, max_length=500):
        raise Unprocessable("Say why", data=[{"field": "reason", "message": "one line, up to 500 characters"}])
    if body.lessons == 0:
        raise Unprocessable("Grant or remove at least one", data=[{"field": "lessons", "message": "not 0"}])
    teacher = session.get(User, body.teacher_id)
    if teacher is None or teacher.role != "Teacher":
        raise NotFound("Teacher not found")
    if body.lessons > 0:
        currency = teachers.get_profile(session, body.teacher_id).currency
        lot = ledger.new_lot(
            session,
            parent_id=parent_id,
            teacher_id=body.teacher_id,
            duration_minutes=body.duration_minutes,
            lessons=body.lessons,
            unit_amount=0,
            currency=currency,
            expires_at=now + timedelta(days=body.valid_days),
            now=now,
        )
        # The answer is the grant's own entry as written (not the family's newest entry read back,
        # which another transaction's entry could be on PostgreSQL).
        entry = ledger.append(
            session, lot, kind=EntryKind.ADJUST, lessons=body.lessons, actor=actor, now=now, reason=reason
        )
        return [entry_out(entry)]
    taken = ledger.remove(
        session,
        parent_id=parent_id,
        teacher_id=body.teacher_id,
        duration_minutes=body.duration_minutes,
        lessons=-body.lessons,
        actor=actor,
        reason=reason,
        now=now,
    )
    return [entry_out(e) for e in taken]


def expire_one(session: Session, *, lot_id: uuid.UUID, now: datetime) -> str:
    return "expired" if ledger.expire(session, lot_id=lot_id, actor="job:credits", now=now) else "skipped"


def warn_one(session: Session, *, item: ledger.Expiring, days: int, now: datetime) -> str:
    """The parent's email that credits expire in about `days` days, once per lot and mark."""
    if not ledger.mark_warned(session, lot_id=item.lot_id, days=days, now=now):
        return "skipped"
    parent = session.get(User, item.parent_id)
    if parent is None:
        return "skipped"
    payload = {
        "count": str(item.lessons),
        "teacher": _name(session, item.teacher_id) or "",
        "teacherId": str(item.teacher_id),
        "expiresAt": item.expires_at.isoformat(),
        "days": str(days),
    }
    notices.account_notice(session, user=parent, kind="credits_expiring.parent", payload=payload, now=now)
    return f"warned_{days}"
