"""Issue #13 over HTTP: a teacher's checklist, time off, and availability by session length."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests import factories as f
from tests.support import payments as pay
from tutorbook.teachers.models import TimeOff
from tutorbook.teachers.service import MAX_UPCOMING_TIME_OFF


def monday(weeks: int = 2) -> datetime:
    """Midnight UTC of a Monday at least `weeks` weeks ahead."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=7 * weeks - today.weekday())


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def starts(c, teacher, day: datetime, minutes: int | None = None) -> list[str]:
    params = {"from": z(day), "to": z(day + timedelta(days=1))}
    if minutes is not None:
        params["durationMinutes"] = minutes
    r = c.get(f"/api/Teachers/{teacher['user']['id']}/availability", params=params)
    assert r.status_code == 200, r.text
    return [s["startsAt"][11:16] for s in r.json()["data"]]


def test_a_new_teacher_sees_what_is_missing_and_is_listed_once_it_is_done(c):
    t = f.register(c, role="Teacher")
    me = t["client"].get("/api/Teachers/me").json()["data"]
    assert me["listed"] is False and me["missing"] == ["price", "subjects", "hours"]
    assert c.get("/api/Teachers").json()["data"] == []
    body = {"subjects": ["Chemistry"], "hourlyRate": 5000, "currency": "eur", "timeZone": "Europe/Paris"}
    r = t["client"].put("/api/Teachers/me", json=body)
    assert r.status_code == 200 and r.json()["data"]["missing"] == ["hours"]
    assert c.get("/api/Teachers").json()["data"] == []
    t["client"].put(
        "/api/Teachers/me/availability", json={"windows": [{"weekday": 0, "start": "09:00", "end": "12:00"}]}
    )
    me = t["client"].get("/api/Teachers/me").json()["data"]
    assert me["listed"] is True and me["missing"] == [] and me["subjects"] == ["Chemistry"]
    assert [x["id"] for x in c.get("/api/Teachers").json()["data"]] == [t["user"]["id"]]


def test_availability_offers_only_starts_where_the_whole_session_fits(c):
    t = f.teacher(c, windows=[{"weekday": 0, "start": "09:00", "end": "11:00"}])
    p = f.parent(c)
    day = monday()
    assert f.book(p, t, starts_at=z(day.replace(hour=10)), duration=30).status_code == 201  # 10:00-10:30 held
    assert starts(c, t, day) == ["09:00"]  # default 60: 09:30-10:30 would clash
    assert starts(c, t, day, 30) == ["09:00", "09:30", "10:30"]
    assert starts(c, t, day, 45) == ["09:00"]
    assert starts(c, t, day, 90) == []
    r = c.get(f"/api/Teachers/{t['user']['id']}/availability", params={"durationMinutes": 50})
    assert r.status_code == 422 and r.json()["data"][0]["field"] == "durationMinutes"


def test_time_off_removes_times_and_booking_refuses_it(c):
    t = f.teacher(c, windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    p = f.parent(c)
    day = monday()
    away = {"startsAt": z(day.replace(hour=10)), "endsAt": z(day.replace(hour=11)), "note": "Dentist"}
    r = t["client"].post("/api/Teachers/me/time-off", json=away)
    assert r.status_code == 201, r.text
    off = r.json()["data"]
    assert off["note"] == "Dentist" and off["affectedSessions"] == []
    assert starts(c, t, day) == ["09:00", "11:00"]
    refused = f.book(p, t, starts_at=z(day.replace(hour=10, minute=30)), duration=30)
    assert refused.status_code == 422 and refused.json()["data"][0]["message"] == "during time off"
    assert [x["id"] for x in t["client"].get("/api/Teachers/me/time-off").json()["data"]] == [off["id"]]
    assert t["client"].delete(f"/api/Teachers/me/time-off/{off['id']}").status_code == 200
    assert starts(c, t, day) == ["09:00", "09:30", "10:00", "10:30", "11:00"]
    assert f.book(p, t, starts_at=z(day.replace(hour=10, minute=30)), duration=30).status_code == 201
    assert t["client"].delete(f"/api/Teachers/me/time-off/{off['id']}").status_code == 404


def test_paid_sessions_inside_new_time_off_are_listed_and_kept(c, api):
    t = f.teacher(c, windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    p = f.parent(c)
    day = monday()
    booking = f.book(p, t, starts_at=z(day.replace(hour=9))).json()["data"]
    pay.pay(booking["checkoutUrl"])
    assert p["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}").status_code == 200
    r = t["client"].post("/api/Teachers/me/time-off", json={"startsAt": z(day), "endsAt": z(day + timedelta(days=1))})
    affected = r.json()["data"]["affectedSessions"]
    assert r.status_code == 201 and [a["id"] for a in affected] == [booking["id"]]
    assert affected[0]["parentEmail"] == p["email"] and affected[0]["studentName"] == "Kid 0"
    assert pay.booking_row(api.state.db, booking["id"]).status == 1  # still Confirmed
    listed = t["client"].get("/api/Teachers/me/time-off").json()["data"]
    assert [a["id"] for a in listed[0]["affectedSessions"]] == [booking["id"]]


def test_bad_time_off_is_422_and_adds_nothing(c):
    t = f.teacher(c)
    day = monday()
    for body in (
        {"startsAt": z(day), "endsAt": z(day - timedelta(hours=1))},
        {"startsAt": "2030-01-01T10:00:00", "endsAt": "2030-01-02T10:00:00"},
        {"startsAt": z(day), "endsAt": z(day + timedelta(days=400))},
        {"startsAt": "2001-01-01T00:00:00Z", "endsAt": "2001-01-02T00:00:00Z"},
        {"startsAt": z(day), "endsAt": z(day + timedelta(days=1)), "note": "x" * 201},
    ):
        r = t["client"].post("/api/Teachers/me/time-off", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["success"] is False
    assert t["client"].get("/api/Teachers/me/time-off").json()["data"] == []


def statements_of(api, request) -> int:
    """How many SQL statements the app ran while answering `request()`."""
    count = [0]

    def counted(*_args):
        count[0] += 1

    sa.event.listen(api.state.db.engine, "before_cursor_execute", counted)
    try:
        assert request().status_code == 200
    finally:
        sa.event.remove(api.state.db.engine, "before_cursor_execute", counted)
    return count[0]


def add_time_off_rows(api, teacher, n: int, *, first_day: int) -> None:
    """n one-hour ranges ahead, written straight to the table (quicker than n requests)."""
    start = monday(weeks=3) + timedelta(days=first_day)
    with api.state.db.session_scope() as s:
        for i in range(n):
            at = start + timedelta(hours=i)
            s.add(
                TimeOff(
                    teacher_id=uuid.UUID(teacher["user"]["id"]),
                    starts_at=at,
                    ends_at=at + timedelta(hours=1),
                    note="",
                    created_at=datetime.now(UTC),
                )
            )


def test_listing_time_off_costs_the_same_statements_for_3_ranges_or_150(c, api):
    t = f.teacher(c, windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    p = f.parent(c)
    day = monday()
    booking = f.book(p, t, starts_at=z(day.replace(hour=9))).json()["data"]
    pay.pay(booking["checkoutUrl"])
    assert p["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}").status_code == 200
    t["client"].post("/api/Teachers/me/time-off", json={"startsAt": z(day), "endsAt": z(day + timedelta(days=1))})
    add_time_off_rows(api, t, 2, first_day=0)
    listing = lambda: t["client"].get("/api/Teachers/me/time-off")  # noqa: E731
    few = statements_of(api, listing)
    add_time_off_rows(api, t, 147, first_day=10)
    assert statements_of(api, listing) == few
    listed = listing().json()["data"]
    assert len(listed) == 150 and [a["id"] for a in listed[0]["affectedSessions"]] == [booking["id"]]
    assert all(x["affectedSessions"] == [] for x in listed[1:])


def test_time_off_ahead_is_capped_with_a_409(c, api):
    t = f.teacher(c)
    add_time_off_rows(api, t, MAX_UPCOMING_TIME_OFF, first_day=0)
    day = monday(weeks=10)
    r = t["client"].post("/api/Teachers/me/time-off", json={"startsAt": z(day), "endsAt": z(day + timedelta(days=1))})
    assert r.status_code == 409 and r.json()["success"] is False and "remove some" in r.json()["message"]
    assert len(t["client"].get("/api/Teachers/me/time-off").json()["data"]) == MAX_UPCOMING_TIME_OFF
