"""Migration 0015 (issue #27) on a populated copy: every kind of booking the demo and the suites
make, built at 0014, upgraded to head (each value where it belongs now), downgraded again (the
booking's old columns back with the same values), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import DATABASES, pg_database
from tutorbook.db import UTCDateTime
from tutorbook.migrate import downgrade, upgrade

BEFORE, HEAD = "0014_job_schedule", "0015_payment_records"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PRICE = 6000

USERS = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    *(sa.column(n) for n in ("email", "password_hash", "full_name", "role", "time_zone")),
    sa.column("created_at", UTCDateTime()),
)
STUDENTS = sa.table(
    "students",
    sa.column("id", sa.Uuid()),
    sa.column("parent_id", sa.Uuid()),
    sa.column("full_name"),
    sa.column("created_at", UTCDateTime()),
)
_TIMES = (
    "starts_at",
    "ends_at",
    "checkout_expires_at",
    "paid_at",
    "cancelled_at",
    "meeting_next_attempt_at",
    "created_at",
    "updated_at",
)
_IDS = ("id", "parent_id", "student_id", "teacher_id")
OLD = sa.table(
    "private_sessions",
    *(sa.column(n, sa.Uuid()) for n in _IDS),
    *(sa.column(n, UTCDateTime()) for n in _TIMES),
    *(
        sa.column(n)
        for n in (
            "subject",
            "price_amount",
            "currency",
            "status",
            "stripe_session_id",
            "stripe_payment_intent_id",
            "checkout_url",
            "cancellation_reason",
            "refunded_amount",
            "payout_destination",
            "platform_fee_amount",
            "stripe_charge_id",
            "stripe_transfer_id",
            "stripe_application_fee_id",
            "transfer_amount",
            "transfer_reversed_amount",
            "fee_refunded_amount",
            "meeting_url",
            "meeting_provider",
            "meeting_external_id",
            "meeting_attempts",
            "meeting_error",
            "terms_full_refund_hours",
            "terms_late_refund_percent",
            "terms_reschedule_deadline_hours",
            "terms_max_reschedules",
            "reschedule_count",
        )
    ),
)
REFUNDS = sa.table(
    "refunds",
    sa.column("id", sa.Uuid()),
    sa.column("session_id", sa.Uuid()),
    *(sa.column(n) for n in ("stripe_refund_id", "payment_intent_id", "amount", "currency", "status", "reason")),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
HISTORY = sa.table(
    "session_status_history",
    sa.column("session_id", sa.Uuid()),
    *(sa.column(n) for n in ("from_status", "to_status", "reason", "actor")),
    sa.column("created_at", UTCDateTime()),
    sa.column("moved_from", UTCDateTime()),
    sa.column("moved_to", UTCDateTime()),
)
TERMS = {
    "terms_full_refund_hours": 48,
    "terms_late_refund_percent": 50,
    "terms_reschedule_deadline_hours": 12,
    "terms_max_reschedules": 2,
}
CONNECT = {"payout_destination": "acct_T", "platform_fee_amount": 900}


def _paid(n: int, **more):
    return {
        "stripe_session_id": f"cs_{n}",
        "stripe_payment_intent_id": f"pi_{n}",
        "checkout_url": f"https://c/{n}",
        "checkout_expires_at": T0 + timedelta(minutes=31),
        "paid_at": T0 + timedelta(minutes=5),
        **TERMS,
        **more,
    }


def _split(n: int, *, reversed_: int = 0, fee_refunded: int = 0):
    return {
        **CONNECT,
        "stripe_charge_id": f"ch_{n}",
        "stripe_transfer_id": f"tr_{n}",
        "stripe_application_fee_id": f"fee_{n}",
        "transfer_amount": PRICE,
        "transfer_reversed_amount": reversed_,
        "fee_refunded_amount": fee_refunded,
    }


def _unpaid(n: int, **more):
    return {
        "stripe_session_id": f"cs_{n}",
        "checkout_url": f"https://c/{n}",
        "checkout_expires_at": T0 + timedelta(minutes=31),
        **more,
    }


LINK = {
    "meeting_url": "https://meet.jit.si/room",
    "meeting_provider": "jitsi",
    "meeting_external_id": "room",
    "meeting_attempts": 1,
}
# name -> (status, the booking's columns besides the common ones)
KINDS: dict[str, tuple[int, dict]] = {
    "pending_open_checkout": (0, _unpaid(1)),
    "pending_open_checkout_connect": (0, _unpaid(2, **CONNECT)),
    "pending_checkout_being_made": (0, {"checkout_expires_at": T0 + timedelta(minutes=31)}),
    "confirmed_paid": (1, _paid(3, **LINK)),
    "confirmed_paid_split": (1, _paid(4, **LINK, **_split(4))),
    "cancelled_unpaid": (3, _unpaid(5, cancellation_reason="payment_cancelled", cancelled_at=T0)),
    "cancelled_expired": (3, _unpaid(6, cancellation_reason="checkout_expired", cancelled_at=T0)),
    "cancelled_checkout_failed": (
        3,
        {
            "checkout_expires_at": T0 + timedelta(minutes=31),
            "cancellation_reason": "checkout_failed",
            "cancelled_at": T0,
        },
    ),
    "cancelled_partial_refund": (
        3,
        _paid(7, refunded_amount=3000, cancellation_reason="parent_cancelled", cancelled_at=T0 + timedelta(hours=1)),
    ),
    "cancelled_full_refund_split": (
        3,
        _paid(
            8,
            refunded_amount=PRICE,
            cancellation_reason="teacher_cancelled",
            cancelled_at=T0 + timedelta(hours=1),
            **_split(8, reversed_=PRICE, fee_refunded=900),
        ),
    ),
    "confirmed_with_refused_payment": (1, _paid(9, **LINK)),
    "pending_with_refused_payment": (0, _unpaid(10)),
    "late_payment_refunded": (
        3,
        _unpaid(
            11,
            stripe_payment_intent_id="pi_11",
            refunded_amount=PRICE,
            cancellation_reason="checkout_expired",
            cancelled_at=T0,
        ),
    ),
    "completed_with_link": (2, _paid(12, **LINK)),
    "link_retry_pending": (
        1,
        _paid(13, meeting_attempts=2, meeting_error="Jitsi down", meeting_next_attempt_at=T0 + timedelta(minutes=10)),
    ),
    "rescheduled": (1, _paid(14, **LINK, reschedule_count=1)),
    "from_before_payments": (2, {}),
}
# booking kind -> (refund's payment intent, amount, reason)
REFUND_ROWS = {
    "cancelled_partial_refund": ("pi_7", 3000, "parent_cancelled"),
    "cancelled_full_refund_split": (None, PRICE, "teacher_cancelled"),  # a row from before 0006
    "confirmed_with_refused_payment": ("pi_other_9", 7000, "other_checkout"),
    "pending_with_refused_payment": ("pi_other_10", 5000, "amount_mismatch"),
    "late_payment_refunded": ("pi_11", PRICE, "late_payment_refunded"),
}
# booking kind -> the state of its own payment after the upgrade (None: no payment)
STATES = {
    "pending_open_checkout": "open",
    "pending_open_checkout_connect": "open",
    "pending_checkout_being_made": "open",
    "confirmed_paid": "paid",
    "confirmed_paid_split": "paid",
    "cancelled_unpaid": "withdrawn",
    "cancelled_expired": "expired",
    "cancelled_checkout_failed": "withdrawn",
    "cancelled_partial_refund": "paid",
    "cancelled_full_refund_split": "refunded",
    "confirmed_with_refused_payment": "paid",
    "pending_with_refused_payment": "open",
    "late_payment_refunded": "refunded",
    "completed_with_link": "paid",
    "link_retry_pending": "paid",
    "rescheduled": "paid",
    "from_before_payments": None,
}
PAYMENT_COLUMNS = {
    "stripe_session_id": "stripe_checkout_id",
    "stripe_payment_intent_id": "stripe_payment_intent_id",
    "checkout_url": "checkout_url",
    "checkout_expires_at": "checkout_expires_at",
    "refunded_amount": "refunded_amount",
    "payout_destination": "payout_destination",
    "platform_fee_amount": "platform_fee_amount",
    "stripe_charge_id": "stripe_charge_id",
    "stripe_transfer_id": "stripe_transfer_id",
    "stripe_application_fee_id": "stripe_application_fee_id",
    "transfer_amount": "transfer_amount",
    "transfer_reversed_amount": "transfer_reversed_amount",
    "fee_refunded_amount": "fee_refunded_amount",
}
MEETING_COLUMNS = {
    "meeting_url": "url",
    "meeting_provider": "provider",
    "meeting_external_id": "external_id",
    "meeting_attempts": "attempts",
    "meeting_next_attempt_at": "next_attempt_at",
    "meeting_error": "error",
}
DEFAULTS = {
    "refunded_amount": 0,
    "transfer_amount": 0,
    "transfer_reversed_amount": 0,
    "fee_refunded_amount": 0,
    "meeting_attempts": 0,
    "reschedule_count": 0,
}


def _populate(conn) -> dict[str, uuid.UUID]:
    parent, teacher, child = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for uid, role in ((parent, "Parent"), (teacher, "Teacher")):
        conn.execute(
            USERS.insert().values(
                id=uid,
                email=f"{uid}@x.test",
                password_hash="x",
                full_name=role,
                role=role,
                time_zone="UTC",
                created_at=T0,
            )
        )
    conn.execute(STUDENTS.insert().values(id=child, parent_id=parent, full_name="Kid", created_at=T0))
    ids = {}
    for n, (kind, (status, columns)) in enumerate(KINDS.items()):
        ids[kind] = uuid.uuid4()
        starts = T0 + timedelta(days=2, hours=n)
        conn.execute(
            OLD.insert().values(
                id=ids[kind],
                parent_id=parent,
                student_id=child,
                teacher_id=teacher,
                subject="Maths",
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                price_amount=PRICE,
                currency="usd",
                status=status,
                created_at=T0,
                updated_at=T0 + timedelta(hours=2),
                **{**DEFAULTS, **columns},
            )
        )
    for kind, (intent, amount, reason) in REFUND_ROWS.items():
        conn.execute(
            REFUNDS.insert().values(
                id=uuid.uuid4(),
                session_id=ids[kind],
                stripe_refund_id=f"re_{kind}",
                payment_intent_id=intent,
                amount=amount,
                currency="usd",
                status="succeeded",
                reason=reason,
                created_at=T0 + timedelta(hours=3),
                updated_at=T0 + timedelta(hours=3),
            )
        )
    conn.execute(
        HISTORY.insert().values(
            session_id=ids["late_payment_refunded"],
            from_status=3,
            to_status=3,
            reason="late_payment_refunded",
            actor="stripe:evt_1",
            created_at=T0 + timedelta(minutes=50),
        )
    )
    conn.execute(
        HISTORY.insert().values(
            session_id=ids["rescheduled"],
            from_status=1,
            to_status=1,
            reason="rescheduled",
            actor="user:x",
            created_at=T0 + timedelta(hours=1),
            moved_from=T0,
            moved_to=T0 + timedelta(days=1),
        )
    )
    return ids


def _rows(conn, table: str, key: str) -> dict:
    """Every row of `table` as a dict of plain values, by `key` (reflected, so the same code reads
    the table before and after: UUIDs and times as each backend hands them back, made comparable)."""
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    out = {}
    for row in conn.execute(sa.select(reflected)).mappings():
        out[str(_plain(row[key]))] = {k: _plain(v) for k, v in row.items()}
    return out


def _plain(value):
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        return datetime.fromisoformat(value).replace(tzinfo=None)
    return value


@pytest.fixture(params=DATABASES)
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'populated.db'}"
    return pg_database("tutorbook_payment_records")


def test_the_payment_records_migration_moves_every_kind_of_booking_and_back(url):
    upgrade(url, BEFORE)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        ids = _populate(conn)
    with engine.connect() as conn:
        bookings_before = _rows(conn, "private_sessions", "id")
        refunds_before = _rows(conn, "refunds", "id")
        history_before = _rows(conn, "session_status_history", "id")
    engine.dispose()

    upgrade(url, HEAD)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        _assert_upgraded(conn, ids, bookings_before, refunds_before)
        assert _rows(conn, "session_status_history", "id") == history_before
    engine.dispose()

    downgrade(url, BEFORE)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert _rows(conn, "private_sessions", "id") == bookings_before
        assert _rows(conn, "refunds", "id") == refunds_before
        assert _rows(conn, "session_status_history", "id") == history_before
        assert not {"payments", "meeting_links", "booking_terms"} & set(sa.inspect(conn).get_table_names())
    engine.dispose()


def _assert_upgraded(conn, ids, bookings_before, refunds_before) -> None:
    bookings = _rows(conn, "private_sessions", "id")
    payments = _rows(conn, "payments", "id")
    links = _rows(conn, "meeting_links", "booking_id")
    terms = _rows(conn, "booking_terms", "booking_id")
    refunds = _rows(conn, "refunds", "id")
    moved = set(PAYMENT_COLUMNS) | set(MEETING_COLUMNS) | set(TERMS)
    assert set(next(iter(bookings.values()))) == set(next(iter(bookings_before.values()))) - moved
    own = {p["booking_id"]: p for p in payments.values() if p["state"] != "refused"}
    for kind, booking_id in ids.items():
        key, old = booking_id.hex, bookings_before[booking_id.hex]
        # the booking keeps its own columns, paid_at and the reschedule count among them
        assert bookings[key] == {k: v for k, v in old.items() if k not in moved}, kind
        if STATES[kind] is None:
            assert key not in own, kind
        else:
            payment = own[key]
            assert payment["state"] == STATES[kind], kind
            assert (payment["kind"], payment["amount"], payment["currency"]) == ("checkout", PRICE, "usd"), kind
            assert {new: payment[new] for new in PAYMENT_COLUMNS.values()} == {
                new: old[o] for o, new in PAYMENT_COLUMNS.items()
            }, kind
            late = kind == "late_payment_refunded"
            assert payment["paid_at"] == (_plain(T0 + timedelta(minutes=50)) if late else old["paid_at"]), kind
        has_link = old["meeting_url"] is not None or old["meeting_attempts"] > 0
        if has_link:
            assert links[key] == {"booking_id": key, **{new: old[o] for o, new in MEETING_COLUMNS.items()}}, kind
        else:
            assert key not in links, kind
        if old["terms_full_refund_hours"] is not None:
            assert terms[key] == {"booking_id": key, **{t[len("terms_") :]: old[t] for t in TERMS}}, kind
        else:
            assert key not in terms, kind
    refused = {p["stripe_payment_intent_id"]: p for p in payments.values() if p["state"] == "refused"}
    assert set(refused) == {"pi_other_9", "pi_other_10"}
    assert refused["pi_other_9"]["booking_id"] == ids["confirmed_with_refused_payment"].hex
    assert (refused["pi_other_9"]["amount"], refused["pi_other_9"]["refunded_amount"]) == (7000, 7000)
    assert refused["pi_other_10"]["booking_id"] == ids["pending_with_refused_payment"].hex
    for refund_id, refund in refunds.items():
        before = refunds_before[refund_id]
        assert {k: v for k, v in refund.items() if k != "payment_id"} == before
        payment = payments[refund["payment_id"]]
        assert payment["booking_id"] == refund["session_id"]
        if before["payment_intent_id"] in refused:
            assert payment["state"] == "refused"
        else:
            assert payment is own[refund["session_id"]]
