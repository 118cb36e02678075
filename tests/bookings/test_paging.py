"""My Bookings and the teacher's schedule page by keyset (`after`, a cursor), as well as by the
frontend's page numbers; walking the cursors yields every row once, in order, ties included."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import factories as f
from tests.conftest import make_settings
from tests.support.servers import ThreadedServer, http_get
from tutorbook.app import create_app
from tutorbook.bookings.lifecycle import Reason, Status
from tutorbook.bookings.models import Booking
from tutorbook.clock import utc_now

HOUR = timedelta(hours=1)
ORIGIN = "http://localhost:4200"


def insert(api, *, parent: dict, teacher: dict, starts_at, status: Status = Status.CONFIRMED, paid: bool = True) -> str:
    """A booking written straight into the database (many of them, at chosen times, fast)."""
    now = utc_now()
    cancelled = status == Status.CANCELLED
    booking = Booking(
        parent_id=uuid.UUID(parent["user"]["id"]),
        student_id=uuid.UUID(parent["students"][0]),
        teacher_id=uuid.UUID(teacher["user"]["id"]),
        subject="Mathematics",
        starts_at=starts_at,
        ends_at=starts_at + HOUR,
        price_amount=6000,
        currency="usd",
        status=status,
        paid_at=now if paid else None,
        cancelled_at=now if cancelled else None,
        cancellation_reason=(Reason.PARENT_CANCELLED if paid else Reason.PAYMENT_CANCELLED) if cancelled else None,
        created_at=now,
        updated_at=now,
    )
    with api.state.db.session_scope() as s:
        s.add(booking)
        s.flush()
        return str(booking.id)


def in_order(rows: dict[str, object], *, newest_first: bool) -> list[str]:
    """Booking ids by start (newest or oldest first), ties by id: the order both databases use."""
    by_id = sorted(rows, key=lambda i: uuid.UUID(i).bytes)
    return sorted(by_id, key=lambda i: rows[i], reverse=newest_first)


def error_fields(r) -> list[str]:
    body = r.json()
    assert r.status_code == 422 and body["success"] is False and body["message"], r.text
    return [d["field"] for d in body["data"]]


@pytest.fixture
def family(api, c):
    """A parent whose bookings tie on their start three and two at a time, some hidden from My
    Bookings (cancelled before payment), and another parent's booking at the same times."""
    p, other = f.parent(c), f.parent(c)
    teachers = [f.teacher(c) for _ in range(3)]
    base = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    shown: dict[str, object] = {}
    for n, t in enumerate(teachers):  # three at `base`, two at `base + 5h`
        shown[insert(api, parent=p, teacher=t, starts_at=base)] = base
        if n < 2:
            shown[insert(api, parent=p, teacher=t, starts_at=base + 5 * HOUR)] = base + 5 * HOUR
    for h in (2, 9, 30, 80):  # past, future, Completed and paid-then-cancelled
        status = {2: Status.COMPLETED, 9: Status.CANCELLED}.get(h, Status.CONFIRMED)
        shown[insert(api, parent=p, teacher=teachers[0], starts_at=base + h * HOUR, status=status)] = base + h * HOUR
    hidden = [insert(api, parent=p, teacher=teachers[2], starts_at=base + h * HOUR, status=Status.CANCELLED,
                     paid=False) for h in (5, 30)]
    insert(api, parent=other, teacher=teachers[2], starts_at=base + 9 * HOUR)
    return {"p": p, "teachers": teachers, "shown": shown, "hidden": hidden}


def walk_my_bookings(client, *, page_size: int) -> tuple[list[str], list[dict]]:
    """Every page from the first by following `nextCursor`: (ids in order, the pages' data)."""
    seen, pages, after = [], [], None
    while True:
        params = {"pageSize": page_size, **({"after": after} if after else {})}
        r = client.get("/api/Sessions/my-bookings", params=params)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        pages.append(data)
        seen += [item["id"] for item in data["items"]]
        after = data["nextCursor"]
        if after is None:
            return seen, pages
        assert len(pages) < 50, "the cursors never end"


# -- My Bookings ---------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 2, 3, 20])
def test_walking_my_bookings_by_cursor_yields_each_shown_booking_once_newest_first_ties_by_id(family, page_size):
    seen, pages = walk_my_bookings(family["p"]["client"], page_size=page_size)

    assert seen == in_order(family["shown"], newest_first=True)
    assert len(pages) == -(-len(seen) // page_size)
    assert all(len(p["items"]) == page_size for p in pages[:-1]) and pages[-1]["items"]
    assert [p["page"] for p in pages] == list(range(1, len(pages) + 1))  # counted from the cursor
    assert {p["total"] for p in pages} == {len(family["shown"])}
    assert {p["pageSize"] for p in pages} == {page_size}


def test_the_old_page_numbers_still_work_and_give_the_same_pages_as_the_cursors(family):
    client = family["p"]["client"]
    by_cursor = [p["items"] for p in walk_my_bookings(client, page_size=3)[1]]
    for number, items in enumerate(by_cursor, start=1):
        data = client.get("/api/Sessions/my-bookings", params={"page": number, "pageSize": 3}).json()["data"]
        assert [i["id"] for i in data["items"]] == [i["id"] for i in items]
        assert data["page"] == number and data["pageSize"] == 3 and data["total"] == len(family["shown"])
        assert (data["nextCursor"] is None) == (number == len(by_cursor))
    beyond = client.get("/api/Sessions/my-bookings", params={"page": len(by_cursor) + 1, "pageSize": 3}).json()
    assert beyond["data"]["items"] == [] and beyond["data"]["nextCursor"] is None
    # No parameters at all: the first 20, as before.
    data = client.get("/api/Sessions/my-bookings").json()["data"]
    assert data["page"] == 1 and data["pageSize"] == 20 and len(data["items"]) == len(family["shown"])


def test_a_cursor_from_page_two_by_number_continues_where_it_ended(family):
    client = family["p"]["client"]
    second = client.get("/api/Sessions/my-bookings", params={"page": 2, "pageSize": 2}).json()["data"]
    third = client.get("/api/Sessions/my-bookings", params={"pageSize": 2, "after": second["nextCursor"]}).json()
    assert [i["id"] for i in third["data"]["items"]] == in_order(family["shown"], newest_first=True)[4:6]
    assert third["data"]["page"] == 3
    # Another page size from there: the number is that of the page holding the first item.
    odd = client.get("/api/Sessions/my-bookings", params={"pageSize": 3, "after": second["nextCursor"]}).json()
    assert [i["id"] for i in odd["data"]["items"]] == in_order(family["shown"], newest_first=True)[4:7]
    assert odd["data"]["page"] == 2


def test_a_broken_cursor_is_a_422_naming_after_not_a_server_error(family):
    client = family["p"]["client"]
    for after in (
        "broken",
        "x~y",
        f"2026-12-01T10:00:00~{uuid.uuid4()}",  # no zone
        f"0001-01-01T00:00:00-23:59~{uuid.uuid4()}",  # outside the years the app counts
        "2026-12-01T10:00:00Z~not-a-uuid",
        "a" * 101,
        "2026\x00~x",
    ):
        r = client.get("/api/Sessions/my-bookings", params={"after": after})
        assert error_fields(r) == ["after"], after


def test_a_page_number_with_a_cursor_is_refused(family):
    client = family["p"]["client"]
    after = client.get("/api/Sessions/my-bookings", params={"pageSize": 2}).json()["data"]["nextCursor"]
    r = client.get("/api/Sessions/my-bookings", params={"page": 2, "after": after})
    assert error_fields(r) == ["page"]


def test_another_parents_cursor_shows_only_your_own_bookings(family, c):
    stranger = f.parent(c)
    after = family["p"]["client"].get("/api/Sessions/my-bookings", params={"pageSize": 1}).json()["data"]["nextCursor"]
    data = stranger["client"].get("/api/Sessions/my-bookings", params={"after": after}).json()["data"]
    assert data["items"] == [] and data["total"] == 0 and data["nextCursor"] is None


# -- the teacher's schedule ------------------------------------------------------------------


def next_link(r) -> str | None:
    """The `after` of the Link header's rel="next" URL, checked to keep the other parameters."""
    link = r.headers.get("link")
    if link is None:
        return None
    match = re.fullmatch(r'<(/api/Sessions/teacher-schedule\?[^>]+)>; rel="next"', link)
    assert match, link
    return parse_qs(urlsplit(match.group(1)).query)["after"][0]


@pytest.fixture
def schedule(api, c):
    """A teacher's paid sessions, four of them at one time (one Confirmed, the rest Completed or
    cancelled after payment), and an unpaid one the schedule never shows."""
    t, parents = f.teacher(c), [f.parent(c) for _ in range(4)]
    base = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    shown: dict[str, object] = {}
    for n, p in enumerate(parents):
        status = [Status.CONFIRMED, Status.COMPLETED, Status.CANCELLED, Status.CANCELLED][n]
        shown[insert(api, parent=p, teacher=t, starts_at=base + 3 * HOUR, status=status)] = base + 3 * HOUR
    for h in (0, 1, 5, 26, 50):
        shown[insert(api, parent=parents[0], teacher=t, starts_at=base + h * HOUR)] = base + h * HOUR
    insert(api, parent=parents[1], teacher=t, starts_at=base + 7 * HOUR, status=Status.CANCELLED, paid=False)
    insert(api, parent=parents[1], teacher=f.teacher(c), starts_at=base + 3 * HOUR)  # another teacher's
    return {"t": t, "shown": shown, "base": base}


def walk_schedule(client, params: dict) -> tuple[list[str], list[int]]:
    """(every id, each page's length) from the first page by following the Link header."""
    seen, sizes, after = [], [], None
    while True:
        r = client.get("/api/Sessions/teacher-schedule", params={**params, **({"after": after} if after else {})})
        assert r.status_code == 200, r.text
        items = r.json()["data"]
        seen += [i["id"] for i in items]
        sizes.append(len(items))
        after = next_link(r)
        if after is None:
            return seen, sizes
        assert len(sizes) < 50, "the cursors never end"


@pytest.mark.parametrize("page_size", [1, 3, 4, 100])
def test_walking_the_schedule_by_its_next_links_yields_each_paid_session_once_by_start_ties_by_id(
    schedule, page_size
):
    seen, sizes = walk_schedule(schedule["t"]["client"], {"pageSize": page_size})

    assert seen == in_order(schedule["shown"], newest_first=False)
    assert sizes == [page_size] * (len(seen) // page_size) + ([len(seen) % page_size] if len(seen) % page_size else [])


def test_the_schedules_next_link_keeps_the_time_window(schedule):
    base = schedule["base"]
    window = {"from": (base + 2 * HOUR).isoformat(), "to": (base + 30 * HOUR).isoformat()}
    seen, _ = walk_schedule(schedule["t"]["client"], {**window, "pageSize": 2})
    inside = {i: s for i, s in schedule["shown"].items() if base + HOUR < s < base + 30 * HOUR}
    assert seen == in_order(inside, newest_first=False) and len(seen) == 6


def test_the_schedule_without_paging_parameters_is_the_whole_list_as_before(schedule):
    r = schedule["t"]["client"].get("/api/Sessions/teacher-schedule")
    assert [i["id"] for i in r.json()["data"]] == in_order(schedule["shown"], newest_first=False)
    assert "link" not in r.headers


def test_a_broken_schedule_cursor_or_page_size_is_a_422_naming_it(schedule):
    client = schedule["t"]["client"]
    for params, field in (
        ({"after": "x~y"}, "after"),
        ({"after": f"2026-12-01T10:00:00~{uuid.uuid4()}"}, "after"),
        ({"pageSize": 0}, "pageSize"),
        ({"pageSize": 501}, "pageSize"),
    ):
        assert error_fields(client.get("/api/Sessions/teacher-schedule", params=params)) == [field], params


def test_the_frontends_origin_may_read_the_link_header(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path, cors_origins=[ORIGIN]))
    server = ThreadedServer(app).start()
    try:
        r = http_get(f"{server.base_url}/health", headers={"Origin": ORIGIN})
    finally:
        server.stop()
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "link" in r.headers["access-control-expose-headers"].lower().split(", ")
