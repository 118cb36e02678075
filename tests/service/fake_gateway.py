"""A Stripe account in memory, behind the same `PaymentGateway` Protocol as `StripeGateway`.

It keeps what Stripe would: Checkout Sessions and their states, the payment (intent and charge)
each paid one made, refunds (partial ones too, never more than is left), a destination charge's
transfer to the teacher and the platform's application fee with what was reversed of them, the
connected accounts; and the events Stripe would send about all of it (`events`), for the test to
deliver, again, or not at all. The customer's side (paying, an asynchronous payment settling or
failing, Stripe expiring a checkout on its own) are methods the test calls: `pay`, `pay_later`,
`settle_async`, `fail_async`, `expire_at_stripe`.

Each gateway call is logged in `calls` (name and arguments); `fail_next` makes the next calls of a
method raise one of the port's errors, as Stripe unreachable or refusing would. Idempotency keys
behave as Stripe's: the same checkout per booking, the same refund per refund key.

`CHECK` below makes mypy check it against the Protocol (`mypy tests/service`, run by `make lint`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tutorbook.bookings.checkout import Checkout, PaymentSplit
from tutorbook.clock import utc_now
from tutorbook.payments import objects
from tutorbook.payments.port import (
    ChargeOutcome,
    CheckoutNotFound,
    CheckoutNotOpen,
    CheckoutStatus,
    InvalidWebhook,
    OffSessionCharge,
    PaymentGateway,
    PlatformAccount,
    RefundRefused,
    RefundResult,
    Refused,
    Reversal,
    SavedCard,
    Transfer,
    WebhookEndpoint,
)
from tutorbook.teachers.payouts import AccountState

SIGNATURE = "t=0,v1=fake"  # what `sign` gives and `construct_event` accepts


@dataclass
class Session:
    """A Checkout Session as Stripe keeps it."""

    id: str
    booking_id: str
    amount: int
    currency: str
    product_name: str
    customer_email: str | None
    expires_at: datetime
    created: datetime
    destination: str | None
    application_fee: int | None
    customer: str | None = None  # a weekly series' checkout: the parent's Customer
    save_card: bool = False  # payment_intent_data.setup_future_usage = off_session
    status: CheckoutStatus = "open"
    payment_status: str = "unpaid"  # unpaid | paid
    payment_intent: str | None = None
    metadata: dict[str, str] | None = None  # a package's checkout names its purchase (default: a booking's)

    def as_json(self) -> dict[str, Any]:
        """The session as Stripe's API and events give it."""
        return {
            "id": self.id,
            "object": "checkout.session",
            "mode": "payment",
            "status": self.status,
            "payment_status": self.payment_status,
            "url": f"https://checkout.fake/{self.id}" if self.status == "open" else None,
            "payment_intent": self.payment_intent,
            "amount_total": self.amount,
            "currency": self.currency,
            "client_reference_id": self.booking_id,
            "metadata": self.metadata or {"booking_id": self.booking_id, "type": "session-booking"},
            "expires_at": int(self.expires_at.timestamp()),
            "created": int(self.created.timestamp()),
        }


@dataclass
class Payment:
    """A payment intent with its one charge; a destination charge's transfer and fee with it."""

    id: str
    charge_id: str
    checkout_id: str
    amount: int
    currency: str
    destination: str | None
    succeeded: bool
    refunded: int = 0
    transfer_id: str | None = None
    transfer_amount: int = 0
    transfer_reversed: int = 0
    fee_id: str | None = None
    fee_amount: int = 0
    fee_refunded: int = 0
    application_fee: int | None = None  # an off-session charge's (a checkout's is on its session)

    @property
    def left(self) -> int:
        return self.amount - self.refunded


@dataclass
class Refund:
    id: str
    payment_intent: str
    amount: int
    key: str
    booking_id: str
    status: str
    reverse_transfer: bool
    refund_application_fee: bool
    reversed: int = 0  # of the transfer, by this refund


@dataclass
class Card:
    """A card saved to a customer, and what charging it does (Stripe's test cards: 4242 succeeds,
    0341 is declined, 3184 requires authentication)."""

    saved: SavedCard
    charge: ChargeOutcome = "succeeded"
    detached: bool = False


@dataclass
class FakeGateway:
    """The in-memory Stripe account; `now` is its clock (Unix times of events and sessions)."""

    now: Callable[[], datetime] = utc_now
    sessions: dict[str, Session] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    refunds: list[Refund] = field(default_factory=list)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    refund_status: str = "succeeded"  # what Stripe answers a new refund with
    endpoints: list[WebhookEndpoint] = field(default_factory=list)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)  # customer id -> parent id
    cards: dict[str, Card] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)  # idempotency key -> the first answer
    closed: int = 0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- what the test does ---------------------------------------------------------------

    def fail_next(self, method: str, error: Exception, *, times: int = 1) -> None:
        """The next `times` calls of `method` raise `error` (Stripe down: GatewayError; slow:
        GatewayTimeout; refusing: Refused, RefundRefused)."""
        self.failures.setdefault(method, []).extend([error] * times)

    def called(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call of `method`, in order."""
        return [kwargs for name, kwargs in self.calls if name == method]

    def session_of(self, booking_id: object) -> Session:
        """The (one) Checkout Session made for a booking."""
        found = [s for s in self.sessions.values() if s.booking_id == str(booking_id)]
        assert len(found) == 1, f"{len(found)} checkouts for booking {booking_id}"
        return found[0]

    def checkout(self, booking_id: object) -> Checkout:
        """The booking's checkout as the gateway reads it (what a job would get from Stripe)."""
        return self._read(self.session_of(booking_id))

    def pay(self, checkout_id: str, *, charge: ChargeOutcome = "succeeded") -> dict[str, Any]:
        """The parent pays by card: the session completes paid (with a destination charge's
        transfer and fee); the `checkout.session.completed` event."""
        session = self._open(checkout_id)
        session.status = "complete"
        self._charge(session, succeeded=True)
        if session.save_card and session.customer:  # the card is saved: `charge` is what charging it does
            self.save_card(session.customer, charge=charge)
        return self._emit("checkout.session.completed", session.as_json())

    def pay_later(self, checkout_id: str) -> dict[str, Any]:
        """The parent pays by a delayed method (a bank debit): the session completes unpaid; the
        `checkout.session.completed` event (payment_status unpaid)."""
        session = self._open(checkout_id)
        session.status = "complete"
        self._charge(session, succeeded=False)
        return self._emit("checkout.session.completed", session.as_json())

    def settle_async(self, checkout_id: str) -> dict[str, Any]:
        """A delayed payment succeeds: `checkout.session.async_payment_succeeded`."""
        session = self.sessions[checkout_id]
        assert session.status == "complete" and session.payment_intent, "pay_later first"
        payment = self.payments[session.payment_intent]
        payment.succeeded = True
        session.payment_status = "paid"
        self._split(payment)
        return self._emit("checkout.session.async_payment_succeeded", session.as_json())

    def fail_async(self, checkout_id: str) -> dict[str, Any]:
        """A delayed payment fails: `checkout.session.async_payment_failed`."""
        session = self.sessions[checkout_id]
        assert session.status == "complete" and session.payment_status == "unpaid", "pay_later first"
        return self._emit("checkout.session.async_payment_failed", session.as_json())

    def expire_at_stripe(self, checkout_id: str) -> dict[str, Any]:
        """Stripe expires an open session on its own (its expires_at passed): the event, with no
        idempotency key of the app's."""
        session = self._open(checkout_id)
        session.status = "expired"
        return self._emit("checkout.session.expired", session.as_json())

    def refund_in_dashboard(self, payment_intent: str, amount: int) -> dict[str, Any]:
        """Someone refunds part of a payment in Stripe's dashboard, the app not asked: the
        `charge.refunded` event."""
        payment = self.payments[payment_intent]
        assert 0 < amount <= payment.left
        refund = Refund(self._id("re"), payment_intent, amount, self._id("dashboard"), "", "succeeded", False, False)
        self.refunds.append(refund)
        self._take_back(payment, refund)
        return self.events[-1]

    def enable_account(self, account_id: str) -> dict[str, Any]:
        """The teacher finished Stripe's onboarding: `account.updated` with charges and payouts on."""
        state = AccountState(id=account_id, charges_enabled=True, payouts_enabled=True, details_submitted=True)
        self.accounts[account_id] = state
        return self._emit(
            "account.updated",
            {
                "id": account_id,
                "object": "account",
                "charges_enabled": True,
                "payouts_enabled": True,
                "details_submitted": True,
                "requirements": {"currently_due": [], "disabled_reason": None},
            },
        )

    def save_card(self, customer: str, *, charge: ChargeOutcome = "succeeded", last4: str = "4242") -> SavedCard:
        """The parent saved a card (on a Checkout with setup_future_usage): what charging it later
        does is `charge` (`declined`: Stripe's 0341 card; `requires_action`: its 3184 card)."""
        assert customer in self.customers, "create_customer first"
        saved = SavedCard(id=self._id("pm"), customer=customer, brand="visa", last4=last4, exp_month=12, exp_year=2034)
        self.cards[saved.id] = Card(saved=saved, charge=charge)
        return saved

    def transfers_to(self, destination: str) -> list[Transfer]:
        """The transfers made to a connected account, oldest first."""
        return [t for t in self.transfers.values() if t.destination == destination]

    def sign(self, event: dict[str, Any]) -> tuple[bytes, str]:
        """An event as Stripe posts it: the body and its Stripe-Signature header."""
        return json.dumps(event).encode(), SIGNATURE

    def succeeded_payments(self) -> list[Payment]:
        return [p for p in self.payments.values() if p.succeeded]

    # -- PaymentGateway ---------------------------------------------------------------------

    async def aclose(self) -> None:
        self.closed += 1

    async def create_checkout(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        product_name: str,
        customer_email: str | None,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        destination: str | None = None,
        application_fee: int | None = None,
    ) -> Checkout:
        self._call("create_checkout", booking_id=booking_id, amount=amount, currency=currency, destination=destination)
        for existing in self.sessions.values():  # Stripe's idempotency key: checkout-{booking_id}
            if existing.booking_id == booking_id:
                return self._read(existing)
        session = Session(
            id=self._id("cs_test"),
            booking_id=booking_id,
            amount=amount,
            currency=currency,
            product_name=product_name,
            customer_email=customer_email,
            expires_at=expires_at,
            created=self.now(),
            destination=destination,
            application_fee=application_fee,
        )
        self.sessions[session.id] = session
        return self._read(session)

    async def create_series_checkout(
        self,
        *,
        booking_id: str,
        amount: int,
        currency: str,
        product_name: str,
        customer: str | None,
        customer_email: str | None,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        destination: str | None = None,
        application_fee: int | None = None,
        save_card: bool = False,
        attempt: str | None = None,
    ) -> Checkout:
        self._call(
            "create_series_checkout",
            booking_id=booking_id,
            amount=amount,
            destination=destination,
            customer=customer,
            save_card=save_card,
            attempt=attempt,
        )
        key = f"checkout-{booking_id}" + (f"-{attempt}" if attempt else "")
        if key in self.keys:  # Stripe's idempotency key
            found: Session = self.keys[key]
            return self._read(found)
        session = Session(
            id=self._id("cs_test"),
            booking_id=booking_id,
            amount=amount,
            currency=currency,
            product_name=product_name,
            customer_email=None if customer else customer_email,
            expires_at=expires_at,
            created=self.now(),
            destination=destination,
            application_fee=application_fee,
            customer=customer,
            save_card=save_card,
        )
        self.sessions[session.id] = session
        self.keys[key] = session
        return self._read(session)

    async def create_purchase_checkout(
        self,
        *,
        purchase_id: str,
        amount: int,
        currency: str,
        product_name: str,
        customer_email: str | None,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        transfer_group: str,
    ) -> Checkout:
        """A package's checkout: the same session, named by the purchase (no destination), its
        metadata the purchase's as the gateway sets it (payments/purchase_checkout.py)."""
        made = await self.create_checkout(
            booking_id=purchase_id,
            amount=amount,
            currency=currency,
            product_name=product_name,
            customer_email=customer_email,
            success_url=success_url,
            cancel_url=cancel_url,
            expires_at=expires_at,
        )
        self.sessions[made.id].metadata = {"purchase_id": purchase_id, "type": "package-purchase"}
        return self._read(self.sessions[made.id])

    async def retrieve_checkout(self, checkout_id: str) -> Checkout:
        return self.retrieve_checkout_sync(checkout_id)

    async def expire_checkout(self, checkout_id: str, *, reason: str) -> Checkout:
        return self.expire_checkout_sync(checkout_id, reason=reason)

    def retrieve_checkout_sync(self, checkout_id: str) -> Checkout:
        self._call("retrieve_checkout", checkout_id=checkout_id)
        return self._read(self._session(checkout_id))

    def expire_checkout_sync(self, checkout_id: str, *, reason: str) -> Checkout:
        self._call("expire_checkout", checkout_id=checkout_id, reason=reason)
        session = self._session(checkout_id)
        if session.status != "open":
            raise CheckoutNotOpen(f"{checkout_id} is {session.status}")
        session.status = "expired"
        self._emit(
            "checkout.session.expired", session.as_json(), idempotency_key=objects.expire_key(checkout_id, reason)
        )
        return self._read(session)

    def list_checkouts_sync(
        self,
        *,
        created_since: datetime,
        created_until: datetime | None = None,
        status: CheckoutStatus | None = None,
    ) -> Iterator[Checkout]:
        self._call("list_checkouts", created_since=created_since, created_until=created_until, status=status)
        since = int(created_since.timestamp())
        until = None if created_until is None else int(created_until.timestamp())
        found = [
            s
            for s in self.sessions.values()
            if int(s.created.timestamp()) >= since
            and (until is None or int(s.created.timestamp()) <= until)
            and (status is None or s.status == status)
        ]
        for s in sorted(found, key=lambda s: s.created, reverse=True):
            yield self._read(s)

    def refund_sync(
        self,
        *,
        payment_intent: str,
        amount: int,
        refund_key: str,
        booking_id: str,
        connect: bool = False,
        with_fee: bool = True,
    ) -> RefundResult:
        self._call(
            "refund", payment_intent=payment_intent, amount=amount, key=refund_key, connect=connect, with_fee=with_fee
        )
        for done in self.refunds:  # Stripe's idempotency key
            if done.key == refund_key:
                return RefundResult(id=done.id, status=done.status, amount=done.amount)
        payment = self.payments.get(payment_intent)
        if payment is None:
            raise CheckoutNotFound(f"No such payment_intent: '{payment_intent}'")
        if not payment.succeeded:
            raise RefundRefused("This PaymentIntent does not have a successful charge to refund.")
        if amount <= 0 or amount > payment.left:
            raise RefundRefused(f"Refund amount ({amount}) is greater than what is left of the charge ({payment.left})")
        refund = Refund(
            id=self._id("re"),
            payment_intent=payment_intent,
            amount=amount,
            key=refund_key,
            booking_id=booking_id,
            status=self.refund_status,
            reverse_transfer=connect,
            refund_application_fee=connect and with_fee,
        )
        self.refunds.append(refund)
        if refund.status != "failed":
            self._take_back(payment, refund)
        return RefundResult(id=refund.id, status=refund.status, amount=refund.amount)

    def payment_split_sync(self, payment_intent: str) -> PaymentSplit | None:
        self._call("payment_split", payment_intent=payment_intent)
        payment = self._payment(payment_intent)
        if not payment.succeeded:
            return None
        mine = [r for r in self.refunds if r.payment_intent == payment_intent and r.status != "failed"]
        return PaymentSplit(
            charge_id=payment.charge_id,
            destination=payment.destination,
            transfer_id=payment.transfer_id,
            transfer_amount=payment.transfer_amount,
            transfer_reversed=payment.transfer_reversed,
            fee_id=payment.fee_id,
            fee_amount=payment.fee_amount,
            fee_refunded=payment.fee_refunded,
            refunded=payment.refunded,
            refunds_without_reversal=tuple(r.id for r in mine if not r.reversed) if payment.transfer_id else (),
            amount=payment.amount,
        )

    def destination_of_sync(self, payment_intent: str) -> tuple[bool, bool]:
        self._call("destination_of", payment_intent=payment_intent)
        payment = self.payments.get(payment_intent)
        if payment is None or payment.destination is None:
            return False, False
        return True, bool(self._fee_asked(payment))

    async def create_account(self, *, teacher_id: str, email: str, country: str) -> AccountState:
        self._call("create_account", teacher_id=teacher_id, email=email, country=country)
        account_id = f"acct_{teacher_id.replace('-', '')[:16]}"
        state = AccountState(id=account_id, charges_enabled=False, payouts_enabled=False, details_submitted=False)
        return self.accounts.setdefault(state.id, state)  # idempotent per teacher, as Stripe's key

    async def retrieve_account(self, account_id: str) -> AccountState:
        return self.retrieve_account_sync(account_id)

    def retrieve_account_sync(self, account_id: str) -> AccountState:
        self._call("retrieve_account", account_id=account_id)
        if account_id not in self.accounts:
            raise CheckoutNotFound(f"No such account: '{account_id}'")
        return self.accounts[account_id]

    async def create_onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        self._call("create_onboarding_link", account_id=account_id)
        return f"https://connect.fake/setup/{account_id}"

    def create_transfer_sync(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        source_transaction: str,
        transfer_group: str,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
    ) -> Transfer:
        self._call("create_transfer", amount=amount, destination=destination, key=idempotency_key)
        if idempotency_key in self.keys:
            found: Transfer = self.keys[idempotency_key]
            return found
        charged = [p for p in self.payments.values() if p.charge_id == source_transaction and p.succeeded]
        if not charged:
            raise Refused(f"No such charge: '{source_transaction}'")
        if charged[0].currency != currency:
            raise Refused("The currency of source_transaction's balance transaction must be the transfer's.")
        left = charged[0].left - sum(
            t.amount - t.amount_reversed for t in self.transfers.values() if t.source_transaction == source_transaction
        )
        if amount <= 0 or amount > left:
            raise Refused(f"Insufficient funds in the source transaction: {amount} asked, {left} left.")
        transfer = Transfer(
            id=self._id("tr"),
            amount=amount,
            currency=currency,
            destination=destination,
            source_transaction=source_transaction,
            transfer_group=transfer_group,
            metadata=dict(metadata or {}),
        )
        self.transfers[transfer.id] = self.keys[idempotency_key] = transfer
        self._emit("transfer.created", self._transfer_json(transfer))
        return transfer

    def reverse_transfer_sync(self, *, transfer_id: str, amount: int, idempotency_key: str) -> Reversal:
        self._call("reverse_transfer", transfer_id=transfer_id, amount=amount, key=idempotency_key)
        if idempotency_key in self.keys:
            done: Reversal = self.keys[idempotency_key]
            return done
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            raise CheckoutNotFound(f"No such transfer: '{transfer_id}'")
        if amount <= 0 or amount > transfer.amount - transfer.amount_reversed:
            raise Refused("You cannot reverse more than is left of the transfer.")
        self.transfers[transfer_id] = replace(transfer, amount_reversed=transfer.amount_reversed + amount)
        reversal = self.keys[idempotency_key] = Reversal(id=self._id("trr"), transfer_id=transfer_id, amount=amount)
        self._emit("transfer.reversed", self._transfer_json(self.transfers[transfer_id]))
        return reversal

    def list_transfers_sync(self, *, transfer_group: str) -> list[Transfer]:
        self._call("list_transfers", transfer_group=transfer_group)
        return [t for t in reversed(self.transfers.values()) if t.transfer_group == transfer_group]

    async def create_customer(self, *, parent_id: str, email: str, name: str | None = None) -> str:
        self._call("create_customer", parent_id=parent_id, email=email)
        for customer, parent in self.customers.items():  # Stripe's key: customer-{parent_id}
            if parent == parent_id:
                return customer
        customer = self._id("cus")
        self.customers[customer] = parent_id
        return customer

    def list_payment_methods_sync(self, customer: str) -> list[SavedCard]:
        self._call("list_payment_methods", customer=customer)
        if customer not in self.customers:
            raise CheckoutNotFound(f"No such customer: '{customer}'")
        return [c.saved for c in reversed(self.cards.values()) if c.saved.customer == customer and not c.detached]

    def charge_off_session_sync(
        self,
        *,
        customer: str,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
        destination: str | None = None,
        application_fee: int | None = None,
    ) -> OffSessionCharge:
        self._call(
            "charge_off_session",
            customer=customer,
            payment_method=payment_method,
            amount=amount,
            booking_id=(metadata or {}).get("booking_id"),
            destination=destination,
            application_fee=application_fee,
        )
        if idempotency_key in self.keys:
            answered: OffSessionCharge = self.keys[idempotency_key]
            return answered
        card = self.cards.get(payment_method)
        if card is None or card.detached or card.saved.customer != customer:
            raise Refused(f"The payment method supplied ({payment_method}) does not belong to {customer}.")
        payment = Payment(
            id=self._id("pi"),
            charge_id=self._id("ch"),
            checkout_id="",
            amount=amount,
            currency=currency,
            destination=destination,
            succeeded=card.charge == "succeeded",
            application_fee=application_fee,
        )
        self.payments[payment.id] = payment
        intent = {"id": payment.id, "object": "payment_intent", "amount": amount, "currency": currency}
        intent["metadata"] = dict(metadata or {})
        if card.charge == "succeeded":
            self._split(payment)  # a destination charge's transfer and fee, as a checkout's
            outcome = OffSessionCharge("succeeded", payment.id, payment.charge_id, amount, currency)
            self._emit("payment_intent.succeeded", {**intent, "status": "succeeded"})
        else:
            code = "card_declined" if card.charge == "declined" else "authentication_required"
            message = "Your card was declined." + (
                "" if code == "card_declined" else " This transaction requires authentication."
            )
            outcome = OffSessionCharge(
                card.charge, payment.id, payment.charge_id, amount, currency, code, code, message
            )
            self._emit("payment_intent.payment_failed", {**intent, "status": "requires_payment_method"})
        self.keys[idempotency_key] = outcome
        return outcome

    def webhook_endpoints_sync(self) -> list[WebhookEndpoint]:
        self._call("webhook_endpoints")
        return list(self.endpoints)

    def platform_account_sync(self) -> PlatformAccount:
        self._call("platform_account")
        return PlatformAccount(
            id="acct_platform",
            country="US",
            default_currency="usd",
            payment_currencies=frozenset({"usd", "eur", "gbp", "jpy"}),
            transfer_countries=frozenset({"US"}),
        )

    def connect_enabled_sync(self) -> bool:
        self._call("connect_enabled")
        return True

    def construct_event(self, payload: bytes, signature: str | None, *, connect: bool = False) -> dict[str, Any]:
        self._call("construct_event", connect=connect)
        if signature != SIGNATURE:
            raise InvalidWebhook("bad signature")
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise InvalidWebhook("invalid payload") from exc
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise InvalidWebhook("not an event")
        return event

    # -- inside -------------------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> None:
        self.calls.append((method, kwargs))
        waiting = self.failures.get(method)
        if waiting:
            raise waiting.pop(0)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _session(self, checkout_id: str) -> Session:
        if checkout_id not in self.sessions:
            raise CheckoutNotFound(f"No such checkout.session: '{checkout_id}'")
        return self.sessions[checkout_id]

    def _payment(self, payment_intent: str) -> Payment:
        if payment_intent not in self.payments:
            raise CheckoutNotFound(f"No such payment_intent: '{payment_intent}'")
        return self.payments[payment_intent]

    def _open(self, checkout_id: str) -> Session:
        session = self._session(checkout_id)
        assert session.status == "open", f"Stripe takes no payment on a {session.status} checkout"
        return session

    def _read(self, session: Session) -> Checkout:
        return objects.read_checkout(session.as_json())

    def _charge(self, session: Session, *, succeeded: bool) -> None:
        payment = Payment(
            id=self._id("pi"),
            charge_id=self._id("ch"),
            checkout_id=session.id,
            amount=session.amount,
            currency=session.currency,
            destination=session.destination,
            succeeded=succeeded,
        )
        self.payments[payment.id] = payment
        session.payment_intent = payment.id
        session.payment_status = "paid" if succeeded else "unpaid"
        if succeeded:
            self._split(payment)

    def _split(self, payment: Payment) -> None:
        """A destination charge: the whole amount to the teacher, the fee taken back from it."""
        if payment.destination is None:
            return
        payment.transfer_id, payment.transfer_amount = self._id("tr"), payment.amount
        fee = self._fee_asked(payment)
        if fee:
            payment.fee_id, payment.fee_amount = self._id("fee"), fee

    def _fee_asked(self, payment: Payment) -> int | None:
        """The application fee the payment was made with: its checkout's, or its own (off-session)."""
        session = self.sessions.get(payment.checkout_id)
        return session.application_fee if session is not None else payment.application_fee

    def _take_back(self, payment: Payment, refund: Refund) -> None:
        """A refund's money: from the charge; with reverse_transfer the teacher's share in
        proportion, with refund_application_fee the fee in proportion (Stripe rounds down)."""
        payment.refunded += refund.amount
        if refund.reverse_transfer and payment.transfer_id:
            left = payment.transfer_amount - payment.transfer_reversed
            share = min(refund.amount * payment.transfer_amount // payment.amount, left)
            payment.transfer_reversed += share
            refund.reversed = share
        if refund.refund_application_fee and payment.fee_id:
            back = min(refund.amount * payment.fee_amount // payment.amount, payment.fee_amount - payment.fee_refunded)
            payment.fee_refunded += back
        charge = {"id": payment.charge_id, "object": "charge", "payment_intent": payment.id}
        self._emit("charge.refunded", {**charge, "amount": payment.amount, "amount_refunded": payment.refunded})

    def _transfer_json(self, transfer: Transfer) -> dict[str, Any]:
        return {
            "id": transfer.id,
            "object": "transfer",
            "amount": transfer.amount,
            "amount_reversed": transfer.amount_reversed,
            "currency": transfer.currency,
            "destination": transfer.destination,
            "source_transaction": transfer.source_transaction,
            "transfer_group": transfer.transfer_group,
            "metadata": dict(transfer.metadata),
        }

    def _emit(self, kind: str, obj: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        event = {
            "id": self._id("evt"),
            "object": "event",
            "type": kind,
            "created": int(self.now().timestamp()),
            "api_version": "2026-10-28.endive",
            "data": {"object": obj},
            "request": {"id": None, "idempotency_key": idempotency_key},
        }
        self.events.append(event)
        return event


CHECK: PaymentGateway = FakeGateway()  # mypy: the fake answers every call the real gateway does
