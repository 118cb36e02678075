"""Tutorbook without its HTTP server: the services of one process wired to a database and to the
fake Stripe account, and the few steps every service-level test takes (a teacher, a parent, a
booking, Stripe's events delivered as the webhook route delivers them, the jobs run at a time).

The tests read what a user or Stripe would see: a booking as the API shows it (`SessionOut`,
whose JSON the issue keeps unchanged), its history as the API shows it, its refunds, and what
the fake Stripe account received and holds. Every lookup of the booking package is made here and
nowhere else, so when its modules or records change (issue #27) only this module follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa

from tests.service.fake_gateway import FakeGateway
from tutorbook import jobs
from tutorbook.accounts import service as accounts
from tutorbook.bookings import earnings, lookup
from tutorbook.bookings import refunds as refund_rows
from tutorbook.bookings import repository as repo
from tutorbook.bookings.models import Booking, Refund
from tutorbook.bookings.schemas import BookIn, HistoryOut, SessionOut, session_out
from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.credits import packages as credit_packages
from tutorbook.credits import purchases
from tutorbook.db import Database
from tutorbook.flows import booking as flows
from tutorbook.flows import followups, payouts, stripe_events
from tutorbook.flows import packages as package_flows
from tutorbook.flows.services import Services, build_services
from tutorbook.identity import AuthUser, Role
from tutorbook.jobs.result import JobResult
from tutorbook.notifications.models import DevMail, Notification
from tutorbook.payments import webhooks
from tutorbook.teachers import payouts as payout_accounts
from tutorbook.teachers import service as teachers
from tutorbook.teachers.slots import Window

T = TypeVar("T")
PASSWORD = "correct-horse-battery-staple-7"
ALL_WEEK = [Window(weekday=d, start_minute=0, end_minute=24 * 60) for d in range(7)]
_people = itertools.count(1)


def settings_for(db: Database, var_dir: Path, **overrides: Any) -> Settings:
    """Settings for a process that never calls out: cheap password hashes, no scheduled jobs."""
    values: dict[str, Any] = {
        "database_url": db.url,
        "var_dir": var_dir,
        "jwt_secret": "service-tier-" + "s" * 32,
        "stripe_webhook_secret": "whsec_fake",
        "stripe_connect_webhook_secret": "whsec_fake_connect",
        "sandbox_enabled": False,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        "jobs_enabled": False,
        "public_url": "http://tutorbook.test",
    }
    return Settings(**(values | overrides)).resolved()


def hours_from_now(hours: float) -> datetime:
    """A start about `hours` ahead, on a whole 5-minute mark (bookings start on one)."""
    at = utc_now() + timedelta(hours=hours)
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


class World:
    """One process's services on `db`, Stripe being `fake`."""

    def __init__(self, db: Database, settings: Settings, fake: FakeGateway) -> None:
        self.db, self.fake = db, fake
        self.svc: Services = dataclasses.replace(build_services(settings, db), gateway=fake)
        self.loop = asyncio.new_event_loop()  # one loop, as one server process has

    def close(self) -> None:
        self.loop.close()

    @property
    def settings(self) -> Settings:
        return self.svc.settings

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """An async flow run to its end, as a request's handler would."""
        return self.loop.run_until_complete(work)

    # -- people ------------------------------------------------------------------------------

    def _user(self, role: Role) -> AuthUser:
        n = next(_people)
        user = self.svc.tx_sync(
            teachers.create_user,
            hasher=self.svc.hasher,
            settings=self.settings,
            email=f"{role.value.lower()}{n}-{uuid.uuid4().hex[:6]}@example.com",
            password=PASSWORD,
            full_name=f"{role.value} {n}",
            role=role,
            now=utc_now(),
        )
        return AuthUser(user.id, Role(user.role), user.email, user.full_name, user.time_zone)

    def teacher(self, *, rate: int = 6000, currency: str = "usd", **terms: int) -> AuthUser:
        """A listed teacher who teaches Mathematics all week at `rate` an hour; `terms`: their
        own cancellation and reschedule terms (teachers.policy.Terms fields)."""
        t = self._user(Role.TEACHER)
        fields = {"subjects": ["Mathematics"], "hourly_rate": rate, "currency": currency, "bio": "bio"}
        self.svc.tx_sync(teachers.update_profile, teacher_id=t.id, fields=fields)
        self.svc.tx_sync(teachers.set_windows, teacher_id=t.id, new=ALL_WEEK)
        if terms:
            self.change_terms(t, **terms)
        return t

    def change_terms(self, teacher: AuthUser, **terms: int) -> None:
        """The teacher sets their own terms (the platform's for any not given)."""
        new = dataclasses.replace(self.svc.terms, **terms)
        self.svc.tx_sync(teachers.set_terms, teacher_id=teacher.id, new=new)

    def payable_teacher(self, **kwargs: Any) -> AuthUser:
        """A teacher with a connected account that Stripe has enabled: paid by destination charges."""
        t = self.teacher(**kwargs)
        self.run(payouts.onboard(self.svc, teacher=t))
        account = self.svc.tx_sync(payout_accounts.account_id, teacher_id=t.id)
        assert account is not None
        self.fake.enable_account(account)
        # Back from onboarding, the payouts page reads the account (its event may come later).
        state = self.run(payouts.refresh(self.svc, teacher=t))
        assert state.charges_enabled and state.payouts_enabled, state
        return t

    def parent(self) -> tuple[AuthUser, uuid.UUID]:
        """A parent and their one child's id."""
        p = self._user(Role.PARENT)
        child = self.svc.tx_sync(
            accounts.add_student, parent_id=p.id, fields={"full_name": "Kid " + p.full_name}, now=utc_now()
        )
        return p, child.id

    def admin(self) -> AuthUser:
        return self._user(Role.ADMIN)

    # -- booking ------------------------------------------------------------------------------

    def book(
        self,
        parent: tuple[AuthUser, uuid.UUID],
        teacher: AuthUser,
        *,
        starts_at: datetime,
        minutes: int = 60,
        pay_with: Literal["checkout", "credit"] = "checkout",
    ) -> SessionOut:
        """The parent books: a Pending booking with its checkout at the fake Stripe (with
        `pay_with="credit"`: one credit of the family's wallet, Confirmed at once)."""
        who, child = parent
        body = BookIn(
            teacher_id=teacher.id,
            student_id=child,
            subject="Mathematics",
            starts_at=starts_at,
            duration_minutes=minutes,
            pay_with=pay_with,
        )
        booked = self.run(flows.book(self.svc, parent=who, body=body))
        return self.view(booked.booking.id)

    def book_and_pay(
        self, parent: tuple[AuthUser, uuid.UUID], teacher: AuthUser, *, starts_at: datetime, minutes: int = 60
    ) -> SessionOut:
        """Booked, paid at Stripe, and the `checkout.session.completed` webhook delivered."""
        booked = self.book(parent, teacher, starts_at=starts_at, minutes=minutes)
        assert booked.stripe_session_id is not None
        self.deliver(self.fake.pay(booked.stripe_session_id))
        return self.view(booked.id)

    def buy_package(
        self,
        parent: tuple[AuthUser, uuid.UUID],
        teacher: AuthUser,
        *,
        lessons: int = 3,
        price: int = 15000,
        pay: bool = True,
    ) -> uuid.UUID:
        """The teacher sells a package of `lessons` one-hour lessons for `price`; the parent buys
        it and (with `pay`) pays at Stripe and comes back to the success page. The purchase's id
        (its checkout at the fake Stripe: `fake.session_of(purchase_id)`)."""
        offer = self.svc.tx_sync(
            credit_packages.create,
            teacher_id=teacher.id,
            lessons=lessons,
            duration_minutes=60,
            price=price,
            valid_days=90,
            now=utc_now(),
        )
        bought = self.run(package_flows.buy(self.svc, parent=parent[0], package_id=offer.package.id))
        assert bought.stripe_checkout_id is not None
        if not pay:
            return bought.id
        self.fake.pay(bought.stripe_checkout_id)
        paid = self.run(package_flows.confirm(self.svc, parent=parent[0], checkout_id=bought.stripe_checkout_id))
        assert self.svc.tx_sync(purchases.must_get, paid.id).stripe_charge_id is not None  # lessons' transfers name it
        return paid.id

    def purchase_state(self, purchase_id: uuid.UUID) -> str:
        """A package purchase's state as the API shows it: open, paid, expired or withdrawn."""
        return str(self.svc.tx_sync(purchases.must_get, purchase_id).state)

    # -- Stripe's side --------------------------------------------------------------------

    def deliver(self, event: dict[str, Any]) -> str:
        """A Stripe event through the webhook's steps (verify, check its shape, record and act
        once, then the follow-ups); the outcome's kind."""
        body, signature = self.fake.sign(event)
        verified = self.svc.gateway.construct_event(body, signature)
        webhooks.check_shape(verified)
        outcome = self.run(stripe_events.receive(self.svc, verified))
        followups.run_sync(self.svc, outcome.followups)
        return outcome.kind

    def deliver_all(self, kind: str | None = None) -> list[str]:
        """Every event the fake Stripe made so far (of `kind`), in order, once more."""
        return [self.deliver(e) for e in list(self.fake.events) if kind is None or e["type"] == kind]

    def job(self, name: str, *, at: datetime | None = None, **options: Any) -> JobResult:
        """One run of a periodic job with the clock at `at`."""
        return jobs.run(name, self.svc, now=at or utc_now(), **options)

    # -- what there is to see -------------------------------------------------------------

    def view(self, booking_id: uuid.UUID) -> SessionOut:
        """The booking as the API shows it."""
        return self.svc.tx_sync(lambda s: session_out(lookup.must_get(s, booking_id=booking_id)))

    def every_booking(self) -> list[SessionOut]:
        """Every booking there is (cancelled ones too), oldest first, as the API shows them."""
        found = self.svc.tx_sync(lambda s: [session_out(b) for b in s.scalars(sa.select(Booking))])
        return sorted(found, key=lambda b: b.created_at)

    def history(self, booking_id: uuid.UUID) -> list[HistoryOut]:
        """The booking's status history as the API shows it, oldest first."""
        return self.svc.tx_sync(lambda s: [HistoryOut.model_validate(h) for h in repo.history(s, booking_id)])

    def earning(self, teacher: AuthUser, booking_id: uuid.UUID) -> earnings.SessionEarning:
        """One booking's line on the teacher's earnings page (gross, refunded, fee, net, settled)."""
        window = (utc_now() - timedelta(days=30), utc_now() + timedelta(days=400))
        found = self.svc.tx_sync(earnings.for_teacher, teacher_id=teacher.id, start=window[0], end=window[1])
        [line] = [e for e in found.sessions if e.booking_id == booking_id]
        return line

    def mail_sent(self, booking_id: uuid.UUID, *, at: datetime | None = None) -> dict[str, int]:
        """The mail job run at `at` (default: now; no SMTP, so each message is kept in dev_mail,
        once, when sent); how many messages about the booking have gone out so far, by kind
        (e.g. `confirmed.parent`), counting every copy sent."""
        self.job("mail", at=at)
        stmt = (
            sa.select(Notification.kind, sa.func.count())
            .join(DevMail, DevMail.notification_id == Notification.id)
            .where(Notification.booking_id == booking_id)
            .group_by(Notification.kind)
        )
        return dict(sorted(self.svc.tx_sync(lambda s: s.execute(stmt).tuples().all())))

    def refunds(self, booking_id: uuid.UUID) -> list[tuple[int, str]]:
        """The refunds asked for the booking: (amount, status) each, in the order asked."""
        rows: list[Refund] = self.svc.tx_sync(refund_rows.for_booking, booking_id=booking_id)
        return [(r.amount, r.status) for r in sorted(rows, key=lambda r: r.created_at)]

    def refunds_asked(self, booking_id: uuid.UUID) -> list[tuple[uuid.UUID, int, str, datetime]]:
        """The refunds asked for the booking with their ids and when each was asked: (id, amount,
        status, created_at), in the order asked."""
        rows: list[Refund] = self.svc.tx_sync(refund_rows.for_booking, booking_id=booking_id)
        return [(r.id, r.amount, r.status, r.created_at) for r in sorted(rows, key=lambda r: r.created_at)]

    def stripe_refunds(self, booking_id: uuid.UUID) -> list[int]:
        """The amounts the fake Stripe account refunded for the booking (not failed ones)."""
        return [r.amount for r in self.fake.refunds if r.booking_id == str(booking_id) and r.status != "failed"]


def later(hours: float) -> datetime:
    """The clock `hours` from now, for a job run."""
    return datetime.now(UTC) + timedelta(hours=hours)


@contextlib.contextmanager
def refused(status: int) -> Iterator[list[Exception]]:
    """The call inside is refused with HTTP `status` (the error a route turns into its envelope);
    the error is put in the list given."""
    caught: list[Exception] = []
    try:
        yield caught
    except Exception as exc:
        if getattr(exc, "status_code", None) != status:
            raise
        caught.append(exc)
    else:
        raise AssertionError(f"not refused: {status} expected")
