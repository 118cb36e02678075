"""Booking shapes: status is always 0-3 with its name beside it."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import IntEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast, get_args

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, StringConstraints, computed_field
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, to_json

from tutorbook.bookings.lifecycle import STATUS_NAMES, Status
from tutorbook.clock import as_utc
from tutorbook.config import Duration
from tutorbook.schemas import CamelModel, InputModel, UtcDatetime
from tutorbook.teachers.policy import FIELDS, Terms
from tutorbook.validation import Instant, single_line

if TYPE_CHECKING:
    from tutorbook.bookings.models import Booking

Subject = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(single_line)]


class SessionStatus(IntEnum):
    """A booking's status: 0 Pending, 1 Confirmed, 2 Completed, 3 Cancelled."""

    # The lifecycle's statuses under the names the frontend uses (the seed's C# `SessionStatus`).
    Pending = Status.PENDING.value
    Confirmed = Status.CONFIRMED.value
    Completed = Status.COMPLETED.value
    Cancelled = Status.CANCELLED.value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """Name the values for client generators: openapi-generator and openapi-typescript read
        `x-enum-varnames`, NSwag reads `x-enumNames`."""
        schema = handler(core_schema)
        names = [member.name for member in cls]
        handler.resolve_ref_schema(schema).update({"x-enum-varnames": names, "x-enumNames": names})
        return schema


StatusName = Literal["Pending", "Confirmed", "Completed", "Cancelled"]
STATUS_DESCRIPTION = "0 Pending, 1 Confirmed, 2 Completed, 3 Cancelled"


class BookIn(InputModel):
    teacher_id: uuid.UUID
    student_id: uuid.UUID
    subject: Subject
    starts_at: Instant
    duration_minutes: Duration = Field(description="minutes")
    pay_with: Literal["checkout", "credit"] = Field(
        default="checkout",
        description="`checkout` (default): pay on Stripe Checkout; `credit`: one credit of this teacher and "
        "length from the family's wallet (no checkout: confirmed at once, 409 without one)",
    )


class RescheduleIn(InputModel):
    starts_at: Instant = Field(description="the new start; the session keeps its length")


class CancelIn(InputModel):
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="a teacher's word to the parent, kept in the history and quoted in the parent's cancellation email",
    )


class AdminRefundIn(InputModel):
    amount: int = Field(gt=0, le=10**9, description="minor units; at most what is left to refund")
    reason: str = Field(min_length=1, max_length=500, description="kept in the booking's history")
    idempotency_key: str = Field(
        min_length=1, max_length=100, description="one refund per key: a retried request refunds once"
    )


class TermsOut(CamelModel):
    """The teacher's terms stored with a booking when it was paid."""

    full_refund_hours: int
    late_refund_percent: int
    reschedule_deadline_hours: int
    max_reschedules: int
    sentence: str


class SessionOut(CamelModel):
    id: uuid.UUID
    parent_id: uuid.UUID
    student_id: uuid.UUID
    teacher_id: uuid.UUID
    teacher_name: str | None = None
    student_name: str | None = None
    subject: str
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    price_amount: int
    currency: str
    status: SessionStatus = Field(description=STATUS_DESCRIPTION)
    stripe_session_id: str | None
    stripe_payment_intent_id: str | None
    checkout_url: str | None
    checkout_expires_at: UtcDatetime | None
    paid_at: UtcDatetime | None
    cancelled_at: UtcDatetime | None
    cancellation_reason: str | None
    refunded_amount: int
    meeting_url: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    reschedule_count: int = Field(default=0, description="how many times the parent has changed the time")
    terms: TermsOut | None = Field(default=None, description="the terms in force when it was paid; null before")

    @computed_field  # type: ignore[prop-decorator]  # mypy: no decorators over @property (pydantic's advice)
    @property
    def status_name(self) -> StatusName:
        """`status` as a word."""
        return cast(StatusName, Status(self.status).label)


class SessionPage(CamelModel):
    """One page of My Bookings, newest start first. Ask for `page` numbers (read by OFFSET: the
    deeper, the slower) or pass `nextCursor` back as `after` (as fast at the last page as at the first)."""

    items: list[SessionOut]
    page: int = Field(description="the page number (of a page asked for by cursor: the page holding its first item)")
    page_size: int
    total: int = Field(description="how many bookings there are in all")
    next_cursor: str | None = Field(
        default=None, description="pass it as `after` for the next page (opaque); null on the last page"
    )


class HistoryOut(CamelModel):
    from_status: SessionStatus | None = Field(description=f"{STATUS_DESCRIPTION}; null for the booking's creation")
    to_status: SessionStatus = Field(description=STATUS_DESCRIPTION)
    reason: str
    actor: str
    created_at: UtcDatetime
    moved_from: UtcDatetime | None = Field(default=None, description="a reschedule: the start before")
    moved_to: UtcDatetime | None = Field(default=None, description="a reschedule: the start after")


def session_out(booking: Booking, teacher_name: str | None = None, student_name: str | None = None) -> SessionOut:
    out = SessionOut.model_validate(booking)
    out.teacher_name, out.student_name = teacher_name, student_name
    kept = booking.terms_in_force
    if kept is not None:
        out.terms = _terms_out(lambda name: getattr(kept, name))
    return out


Out = TypeVar("Out", bound=SessionOut)


def session_row_out(row: Mapping[Any, Any], model: type[Out]) -> Out:
    """A booking read as a plain row (`lists.BookingRow`: its columns, its payment's, link's and
    terms' under the names the JSON shows, and names) as `model`, validated from a dict:
    pydantic's compiled path, without an ORM object's attribute reads."""
    data = dict(row)
    if data["terms_full_refund_hours"] is not None:
        data["terms"] = _terms_out(lambda name: data[f"terms_{name}"])
    return model.model_validate(data)


def session_page_json(
    rows: Sequence[Mapping[Any, Any]], *, page: int, page_size: int, total: int, next_cursor: str | None
) -> bytes:
    """`Envelope[SessionPage]` of these BookingRows as JSON bytes, byte for byte what FastAPI
    writes for the model built with `session_row_out(row, SessionOut)` for each row, without
    the models: each row is a plain dict of SessionOut's fields under their JSON names, in their
    order, written by pydantic's own serializer (issue #33: building and then writing 20
    validated models was a fifth of My Bookings' instructions)."""
    items = _PageWriter.for_rows(rows).items(rows) if rows else []
    data = {"items": items, "page": page, "pageSize": page_size, "total": total, "nextCursor": next_cursor}
    return to_json({"success": True, "message": "OK", "data": data})


def _session_item(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One row as SessionOut's fields under their JSON names, a field at a time (the reference
    `_PageWriter` is checked against, and what it falls back to for a row of other columns)."""
    return {alias: write(row) for alias, write in _SESSION_FIELDS}


class _PageWriter:
    """`_session_item` for the rows of one statement, which all have the same columns: the
    columns read in one C call (`itemgetter`) into a copy of a template already in SessionOut's
    field order, then only the fields that are not a column as it is (the datetimes not already
    in UTC, the status, its name, the terms) set from them. A Python call per field and row was
    most of My Bookings' serialisation (issue #33, docs/PERFORMANCE.md section 9, "wt/perf33")."""

    def __init__(self, keys: tuple[Any, ...]):
        names = [alias for alias, _ in _SESSION_FIELDS]
        self.template: dict[str, Any] = dict.fromkeys(names)
        column_of = {alias: name for name, alias in _ALIASES.items()}
        present = [alias for alias in names if column_of.get(alias) in keys]
        for alias, name in column_of.items():  # an optional field the rows lack: its default
            if name not in keys:
                self.template[alias] = _DEFAULTS[alias]
        self.aliases = tuple(present)
        # Every column of the rows, the fields' first: a row lacking one raises KeyError, and one
        # of another length is not read here, so a row of other columns is never read wrong.
        read = [column_of[alias] for alias in present]
        self.get = operator.itemgetter(*read, *[k for k in keys if k not in set(read)])
        self.utc = tuple(alias for alias in present if alias in _UTC_ALIASES)
        # Rows without a column `_session_item` reads as it is (KeyError there) go to it whole.
        needed = {column_of[alias] for alias in _UTC_ALIASES} | {"status"} | {f"terms_{name}" for name in FIELDS}
        self.columns = len(keys) if len(keys) > 1 and needed <= set(keys) else -1

    @classmethod
    def for_rows(cls, rows: Sequence[Mapping[Any, Any]]) -> _PageWriter:
        return cls(tuple(rows[0].keys()))

    def items(self, rows: Sequence[Mapping[Any, Any]]) -> list[dict[str, Any]]:
        return [self.item(row) for row in rows]

    def item(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        if len(row) != self.columns:
            return _session_item(row)
        try:
            values = self.get(row)
        except KeyError:
            return _session_item(row)
        item = self.template.copy()
        item.update(zip(self.aliases, values, strict=False))  # values: then the other columns
        for alias in self.utc:
            value = item[alias]
            if value is not None and value.tzinfo is not UTC:
                item[alias] = as_utc(value)
        status = item["status"]
        item["status"] = int(status)
        item["statusName"] = STATUS_NAMES.get(status) or Status(status).label
        item["terms"] = _row_terms(row)
        return item


def _utc(value: datetime | None) -> datetime | None:
    # what `UtcDatetime` makes of it (a datetime already in UTC is returned as it is)
    return value if value is None or value.tzinfo is UTC else as_utc(value)


def _row_terms(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    if row["terms_full_refund_hours"] is None:
        return None
    return _terms_json_of(*(row[f"terms_{name}"] or 0 for name in FIELDS))


@lru_cache(maxsize=1024)
def _terms_json_of(*values: int) -> dict[str, Any]:
    # shared between rows like `_terms_of`'s models: only read (written by to_json), never changed
    return _terms_of(*values).model_dump(by_alias=True)


def _is_utc(metadata: Sequence[Any]) -> bool:
    return any(getattr(m, "func", None) is as_utc for m in metadata)  # `UtcDatetime`'s validator


def _session_fields() -> tuple[tuple[str, Callable[[Mapping[Any, Any]], Any]], ...]:
    """(JSON name, how to get its value from a BookingRow) for each of SessionOut's fields in its
    order, the computed `statusName` last, as pydantic writes them."""
    fields: list[tuple[str, Callable[[Mapping[Any, Any]], Any]]] = []
    for name, info in SessionOut.model_fields.items():
        alias = info.alias or name
        if name == "terms":
            fields.append((alias, _row_terms))
        elif name == "status":
            fields.append((alias, _row_status))
        elif _is_utc(info.metadata) or any(_is_utc(getattr(a, "__metadata__", ())) for a in get_args(info.annotation)):
            fields.append((alias, _utc_column(name)))
        else:  # an optional field a row may lack: its default
            fields.append((alias, _column(name, None if info.is_required() else info.default)))
    computed = list(SessionOut.model_computed_fields)
    assert computed == ["status_name"], computed  # a new computed field needs writing here
    fields.append(("statusName", _row_status_name))
    return tuple(fields)


def _column(name: str, default: Any) -> Callable[[Mapping[Any, Any]], Any]:
    return lambda row: row.get(name, default)


def _utc_column(name: str) -> Callable[[Mapping[Any, Any]], Any]:
    def write(row: Mapping[Any, Any]) -> Any:
        return _utc(row[name])

    write.utc = True  # type: ignore[attr-defined]  # _PageWriter's mark of a UtcDatetime column
    return write


def _row_status(row: Mapping[Any, Any]) -> int:
    return int(row["status"])


def _row_status_name(row: Mapping[Any, Any]) -> str:
    return Status(row["status"]).label


def _terms_out(kept: Callable[[str], int | None]) -> TermsOut:
    """The terms a paid booking keeps (its `terms_*` columns)."""
    return _terms_of(*(kept(name) or 0 for name in FIELDS))


@lru_cache(maxsize=1024)
def _terms_of(*values: int) -> TermsOut:
    # The same few terms come back on most rows of a page (issue #33: the sentence and a
    # dataclass copy per row were a tenth of My Bookings' Python calls). Shared: never mutated.
    terms = Terms(**dict(zip(FIELDS, values, strict=True)))
    return TermsOut(**dict(zip(FIELDS, values, strict=True)), sentence=terms.sentence())


_SESSION_FIELDS = _session_fields()
# SessionOut's JSON name of each column a BookingRow may carry (`terms`, `statusName`: not columns)
_ALIASES = {name: info.alias or name for name, info in SessionOut.model_fields.items() if name != "terms"}
_DEFAULTS = {
    info.alias or name: info.default for name, info in SessionOut.model_fields.items() if not info.is_required()
}
_UTC_ALIASES = frozenset(alias for alias, write in _SESSION_FIELDS if getattr(write, "utc", False))


class SessionEarningOut(CamelModel):
    """One paid session: gross = paid, refunded, fee = what the platform keeps, net = what the
    teacher keeps; `paidOut` false when the payment stayed on the platform (no payouts yet),
    `settled` false until Stripe's transfer and fee are recorded."""

    booking_id: uuid.UUID
    starts_at: UtcDatetime
    subject: str
    status: int = Field(ge=0, le=3)
    currency: str
    gross: int
    refunded: int
    fee: int
    net: int
    paid_out: bool
    settled: bool
    student_name: str = Field(default="", description="the child taught")


class MonthTotalOut(CamelModel):
    month: str = Field(description="YYYY-MM (UTC) of the sessions' start")
    currency: str
    sessions: int
    gross: int
    refunded: int
    fee: int
    net: int


class EarningsOut(CamelModel):
    from_: UtcDatetime = Field(serialization_alias="from")
    to: UtcDatetime
    sessions: list[SessionEarningOut]
    months: list[MonthTotalOut]


class TeacherPayoutsOut(CamelModel):
    teacher_id: uuid.UUID
    teacher_name: str
    currency: str
    sessions: int
    gross: int
    refunded: int
    platform_fees: int
    transferred: int
    unsettled: int
    kept_on_platform: int


class PayoutReportOut(CamelModel):
    from_: UtcDatetime = Field(serialization_alias="from")
    to: UtcDatetime
    teachers: list[TeacherPayoutsOut]
    platform_fees: int = Field(description="all currencies' minor units added, for a one-currency platform")
    transferred: int
