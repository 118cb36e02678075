"""The shape a verified Stripe event must have before the webhook handles it.

A correct signature proves who sent an event, not that it carries what the handlers read:
these models check the fields they use (types, lengths, ranges that fit the columns), and
ignore every other field, as Stripe adds fields without notice.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tutorbook.validation import ExternalId, single_line

MAX_INT32 = 2**31 - 1  # amounts are INTEGER columns
# Unix seconds from 2000-01-01 to 2100-01-01 (validation.MIN_YEAR .. MAX_YEAR).
Timestamp = Annotated[int, Field(ge=946_684_800, lt=4_102_444_800)]
Amount = Annotated[int, Field(ge=0, le=MAX_INT32)]
Word = Annotated[str, StringConstraints(max_length=100), AfterValidator(single_line)]
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(single_line)]
Currency = Annotated[str, StringConstraints(max_length=3), AfterValidator(single_line)]
Reference = Annotated[str, StringConstraints(max_length=200), AfterValidator(single_line)]
# Stripe's own limits for metadata: keys up to 40 characters, values up to 500.
MetaKey = Annotated[str, StringConstraints(max_length=40), AfterValidator(single_line)]
MetaValue = Annotated[str, StringConstraints(max_length=500), AfterValidator(single_line)]


class Shape(BaseModel):
    """What Tutorbook reads of one kind of Stripe object."""

    # Strict: the handlers read the raw dict once it passes, so "100" must not pass for 100.
    model_config = ConfigDict(extra="ignore", strict=True)


class Ref(Shape):
    """An expanded object where an id may stand (`payment_intent`)."""

    id: ExternalId


class CheckoutObject(Shape):
    """What Tutorbook reads of a Checkout Session."""

    id: ExternalId
    status: Word | None = None
    payment_status: Word | None = None
    url: Url | None = None
    payment_intent: ExternalId | Ref | None = None
    amount_total: Amount | None = None
    currency: Currency | None = None
    client_reference_id: Reference | None = None
    metadata: dict[MetaKey, MetaValue] | None = None
    expires_at: Timestamp | None = None
    created: Timestamp | None = None


class ChargeObject(Shape):
    """What Tutorbook reads of a Charge (charge.refunded)."""

    payment_intent: ExternalId | Ref | None = None
    amount_refunded: Amount | None = None


class Requirements(Shape):
    """What Stripe still needs of a connected account (the `teacher_payout_accounts` columns)."""

    currently_due: list[Word] | None = Field(default=None, max_length=200)
    disabled_reason: Word | None = None


class AccountObject(Shape):
    """What Tutorbook reads of a connected Account (account.updated)."""

    id: ExternalId
    charges_enabled: bool | None = None
    payouts_enabled: bool | None = None
    details_submitted: bool | None = None
    requirements: Requirements | None = None


class TransferObject(Shape):
    """What Tutorbook reads of a Transfer (transfer.created, .updated, .reversed)."""

    id: ExternalId
    amount: Amount | None = None
    amount_reversed: Amount | None = None
    source_transaction: ExternalId | None = None


class ApplicationFeeObject(Shape):
    """What Tutorbook reads of an Application Fee (application_fee.created, .refunded)."""

    id: ExternalId
    charge: ExternalId | Ref | None = None
    amount_refunded: Amount | None = None


class EventData(Shape):
    """`data` of a handled event: its object, checked against its type's shape (the table
    `webhooks.HANDLERS`)."""

    object: dict[str, Any]


class Event(Shape):
    """Every event: an id and a type that fit the inbox; `data` is checked only when handled."""

    id: ExternalId
    type: Word
    created: Timestamp | None = None  # an account.updated's state is as of this time
    data: Any = None
