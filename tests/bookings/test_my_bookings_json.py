"""My Bookings writes its JSON from the rows (issue #33: no model per row); what FastAPI wrote
for the route's response model, `Envelope[SessionPage]` of `session_row_out(row, SessionOut)`
for each row, is the reference, byte for byte."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests import factories as f
from tests.bookings.test_paging import insert
from tests.support.payments import pay
from tests.support.servers import wait_for
from tutorbook import paging
from tutorbook.api.sessions import _my_bookings_page
from tutorbook.bookings import lists
from tutorbook.bookings.lifecycle import Status
from tutorbook.bookings.schemas import SessionOut, SessionPage, session_page_json, session_row_out
from tutorbook.schemas import Envelope


def reference(api, parent: dict, *, page: int = 1, page_size: int = 20, after: str | None = None) -> bytes:
    """What the route answered before: the page as models, written by pydantic as FastAPI does."""
    with api.state.db.session_scope() as session:
        model = _my_bookings_page(
            session,
            parent_id=uuid.UUID(parent["user"]["id"]),
            page=page,
            page_size=page_size,
            cursor=paging.decode_cursor(after),
        )
    return Envelope[SessionPage](data=model).model_dump_json(by_alias=True).encode()


def test_my_bookings_is_written_byte_for_byte_as_the_response_model_would_write_it(api, c):
    p, t = f.parent(c), f.teacher(c)
    # One booked and paid through the app: its payment, terms and meeting link's columns set.
    r = f.book(p, t, starts_at=f.slot(days=3, hour=9))
    assert r.status_code == 201, r.text
    assert pay(r.json()["data"]["checkoutUrl"]).status_code in (302, 303)
    paid_id = r.json()["data"]["id"]

    def confirmed() -> bool:
        items = p["client"].get("/api/Sessions/my-bookings").json()["data"]["items"]
        return any(i["id"] == paid_id and i["status"] == 1 and i["terms"] for i in items)

    wait_for(confirmed, timeout=30, message="the payment's confirmation")
    # One booked and not paid (a checkout), and rows written straight in: Completed, cancelled
    # after payment, a start with microseconds, no payment record.
    assert f.book(p, t, starts_at=f.slot(days=4, hour=9)).status_code == 201
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    insert(api, parent=p, teacher=t, starts_at=base - timedelta(days=2), status=Status.COMPLETED)
    insert(api, parent=p, teacher=t, starts_at=base + timedelta(days=9), status=Status.CANCELLED)
    insert(api, parent=p, teacher=t, starts_at=base + timedelta(days=6, microseconds=120))

    r = p["client"].get("/api/Sessions/my-bookings")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()["data"]
    assert body["total"] == 5 and len(body["items"]) == 5
    statuses = {i["statusName"] for i in body["items"]}
    assert statuses == {"Pending", "Confirmed", "Completed", "Cancelled"}
    assert any(i["terms"] for i in body["items"]) and any(i["terms"] is None for i in body["items"])
    assert any(i["checkoutUrl"] for i in body["items"]) and any(i["meetingUrl"] for i in body["items"])
    assert r.content == reference(api, p)
    # a page by number and a page by cursor, with a next cursor
    two = p["client"].get("/api/Sessions/my-bookings", params={"page": 2, "pageSize": 2})
    assert two.status_code == 200 and two.json()["data"]["nextCursor"]
    assert two.content == reference(api, p, page=2, page_size=2)
    after = two.json()["data"]["nextCursor"]
    last = p["client"].get("/api/Sessions/my-bookings", params={"pageSize": 2, "after": after})
    assert last.status_code == 200 and last.json()["data"]["page"] == 3
    assert last.content == reference(api, p, page_size=2, after=after)
    # nobody's bookings: an empty page
    other = f.parent(c)
    empty = other["client"].get("/api/Sessions/my-bookings")
    assert empty.json()["data"] == {"items": [], "page": 1, "pageSize": 20, "total": 0, "nextCursor": None}
    assert empty.content == reference(api, other)


def test_session_page_json_matches_the_models_for_odd_rows_too():
    # Values the database does not give here but a row could hold: a naive datetime (SQLite's,
    # before the column type), another time zone, a row without the optional columns.
    row = {
        "id": uuid.UUID(int=1),
        "parent_id": uuid.UUID(int=2),
        "student_id": uuid.UUID(int=3),
        "teacher_id": uuid.UUID(int=4),
        "subject": 'Maths "advanced" \u00e9\u2713',
        "starts_at": datetime(2026, 3, 29, 1, 0, 0, 120),
        "ends_at": datetime(2026, 3, 29, 2, 0, tzinfo=timezone(timedelta(hours=-5))),
        "price_amount": 6000,
        "currency": "usd",
        "status": Status.CONFIRMED,
        "stripe_session_id": None,
        "stripe_payment_intent_id": "pi_1",
        "checkout_url": None,
        "checkout_expires_at": None,
        "paid_at": datetime(2026, 3, 28, tzinfo=UTC),
        "cancelled_at": None,
        "cancellation_reason": None,
        "refunded_amount": 0,
        "meeting_url": "https://meet.example/abc",
        "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 3, 2, 3, 4, 5, 6, tzinfo=UTC),
        "terms_full_refund_hours": 24,
        "terms_late_refund_percent": 50,
        "terms_reschedule_deadline_hours": 12,
        "terms_max_reschedules": 2,
    }
    bare = {**row, "status": 2, "terms_full_refund_hours": None, "teacher_name": "T", "reschedule_count": 1}
    rows = [row, bare]
    page = SessionPage(items=[session_row_out(r, SessionOut) for r in rows], page=3, page_size=2, total=9)
    model = Envelope[SessionPage](data=page).model_dump_json(by_alias=True).encode()
    assert session_page_json(rows, page=3, page_size=2, total=9, next_cursor=None) == model
    page.next_cursor = "abc"
    model = Envelope[SessionPage](data=page).model_dump_json(by_alias=True).encode()
    assert session_page_json(rows, page=3, page_size=2, total=9, next_cursor="abc") == model


def test_a_page_of_rows_with_other_columns_is_written_as_each_rows_model_would_be():
    """The page is read with the first row's columns; a row with other ones (as many columns, one
    of them another; fewer; more) is still written as its own model says, and a page whose rows
    lack a column the fields read as they are is written field by field."""
    common = {
        "parent_id": uuid.UUID(int=2),
        "student_id": uuid.UUID(int=3),
        "teacher_id": uuid.UUID(int=4),
        "subject": "Maths",
        "starts_at": datetime(2026, 3, 29, 9, tzinfo=UTC),
        "ends_at": datetime(2026, 3, 29, 10, tzinfo=timezone(timedelta(hours=2))),
        "price_amount": 6000,
        "currency": "usd",
        "status": Status.PENDING,
        "stripe_session_id": "cs_1",
        "stripe_payment_intent_id": None,
        "checkout_url": "https://checkout.example/cs_1",
        "checkout_expires_at": datetime(2026, 3, 28, 9, 30),
        "paid_at": None,
        "cancelled_at": None,
        "cancellation_reason": None,
        "refunded_amount": 0,
        "meeting_url": None,
        "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 3, 1, tzinfo=UTC),
        "terms_full_refund_hours": None,
        "terms_late_refund_percent": None,
        "terms_reschedule_deadline_hours": None,
        "terms_max_reschedules": None,
    }
    first = {"id": uuid.UUID(int=10), **common, "teacher_name": "Ann", "total": 4}
    swapped = {"id": uuid.UUID(int=11), **common, "student_name": "Bo", "total": 4}  # as many, one other
    fewer = {"id": uuid.UUID(int=12), **common}
    more = {"id": uuid.UUID(int=13), **common, "teacher_name": "Cy", "student_name": "Di", "reschedule_count": 2}
    paid = {**first, "id": uuid.UUID(int=14), "status": 1, "terms_full_refund_hours": 48}
    paid |= {"terms_late_refund_percent": 0, "terms_reschedule_deadline_hours": 24, "terms_max_reschedules": 1}
    for rows in ([first, swapped, fewer, more, paid], [more, fewer, first], [fewer, paid]):
        page = SessionPage(items=[session_row_out(r, SessionOut) for r in rows], page=1, page_size=20, total=4)
        model = Envelope[SessionPage](data=page).model_dump_json(by_alias=True).encode()
        assert session_page_json(rows, page=1, page_size=20, total=4, next_cursor=None) == model
    # a row without a status cannot be written, as a model cannot be made of it: the same errors
    with pytest.raises(KeyError):
        session_page_json(
            [{k: v for k, v in first.items() if k != "status"}], page=1, page_size=20, total=1, next_cursor=None
        )
    with pytest.raises(TypeError):
        session_page_json([{**first, "status": None}], page=1, page_size=20, total=1, next_cursor=None)


def test_my_bookings_rows_read_as_core_are_the_rows_the_orm_session_gave(api, c):
    """lists.my_bookings runs its statement on the session's connection (Core); the same
    statement through the ORM session gives the same rows, values and types, on every kind of page."""
    p, t = f.parent(c), f.teacher(c)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for days, status in ((2, Status.CONFIRMED), (3, Status.PENDING), (-4, Status.COMPLETED), (5, Status.CANCELLED)):
        insert(api, parent=p, teacher=t, starts_at=base + timedelta(days=days, microseconds=days % 3), status=status)
    parent_id = uuid.UUID(p["user"]["id"])
    with api.state.db.session_scope() as session:
        first = lists.my_bookings(session, parent_id=parent_id, page_size=2)
        after = (first[1]["starts_at"], first[1]["id"])
        ids_first = session.get_bind().dialect.name != "postgresql"
        for kind, params, rows in (
            ("first", {}, first),
            ("offset", {"skip": 2}, lists.my_bookings(session, parent_id=parent_id, page_size=2, page=2)),
            (
                "cursor",
                {"starts": after[0], "last_id": after[1]},
                lists.my_bookings(session, parent_id=parent_id, page_size=2, after=after),
            ),
        ):
            stmt = lists._MY_BOOKINGS[kind, ids_first]
            through_orm = session.execute(stmt, {"parent_id": parent_id, "rows": 2, **params}).mappings().all()
            assert rows, kind
            assert [dict(r) for r in rows] == [dict(r) for r in through_orm], kind
            assert [{k: type(v) for k, v in r.items()} for r in rows] == [
                {k: type(v) for k, v in r.items()} for r in through_orm
            ], kind
