"""The cached common reads (issue #33) never show a stale answer: a teacher's week of free times
is cached until their bookings, hours or time off change, the teacher list until a teacher
changes; both across processes (a version counter in the database)."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from tests import factories as f
from tutorbook.api.teachers import render_slots
from tutorbook.bookings import availability
from tutorbook.schemas import Envelope
from tutorbook.teachers.schemas import SlotOut
from tutorbook.versions import read, schedule_changed, schedule_key


def _week(c, t, *, minutes=60):
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    params = {
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": (start + timedelta(days=7)).isoformat().replace("+00:00", "Z"),
        "durationMinutes": minutes,
    }
    r = c.get(f"/api/Teachers/{t['user']['id']}/availability", params=params)
    assert r.status_code == 200, r.text
    return {s["startsAt"] for s in r.json()["data"]}


def test_a_booked_slot_is_gone_from_the_very_next_answer_and_back_when_the_checkout_is_cancelled(c):
    t, p = f.teacher(c), f.parent(c)
    start = f.slot(days=2, hour=10)
    assert start in _week(c, t)  # now cached
    r = f.book(p, t, starts_at=start)
    assert r.status_code == 201, r.text
    assert start not in _week(c, t)
    cs = r.json()["data"]["stripeSessionId"]
    assert p["client"].post(f"/api/Sessions/cancel-payment/{cs}").status_code == 200
    assert start in _week(c, t)


def test_time_off_and_new_hours_show_at_once(c):
    t = f.teacher(c)
    start = f.slot(days=3, hour=9)
    assert start in _week(c, t)
    begins = datetime.fromisoformat(start.replace("Z", "+00:00"))
    r = t["client"].post(
        "/api/Teachers/me/time-off",
        json={"startsAt": start, "endsAt": (begins + timedelta(hours=2)).isoformat().replace("+00:00", "Z")},
    )
    assert r.status_code == 201, r.text
    assert start not in _week(c, t)
    assert t["client"].delete(f"/api/Teachers/me/time-off/{r.json()['data']['id']}").status_code == 200
    assert start in _week(c, t)
    assert t["client"].put("/api/Teachers/me/availability", json={"windows": []}).status_code == 200
    assert _week(c, t) == set()


def test_another_process_sees_a_change_made_through_this_one(c, db, api):
    # A second cache (another process's) over the same database: the version counter tells it.
    t, p = f.teacher(c), f.parent(c)
    teacher_id = uuid.UUID(t["user"]["id"])
    other = availability.WeekCache()
    now = datetime.now(UTC)
    start = datetime.fromisoformat(f.slot(days=2, hour=14).replace("Z", "+00:00"))

    def starts():
        with db.session_scope() as session:
            return availability.bookable_starts(
                session, cache=other, teacher_id=teacher_id, start=now, end=now + timedelta(days=7), minutes=60, now=now
            )

    assert start in starts()
    assert f.book(p, t, starts_at=f.slot(days=2, hour=14)).status_code == 201
    assert start not in starts()
    assert other.hits == 0  # both answers computed: the second for the new version
    misses = other.misses
    assert start not in starts() and other.hits == misses / 2 and other.misses == misses  # then cached


def test_schedule_changed_is_the_one_call_other_busy_times_use(db):
    teacher_id = uuid.uuid4()
    with db.session_scope() as session:
        before = read(session, [schedule_key(teacher_id)])[schedule_key(teacher_id)]
        schedule_changed(session, teacher_ids=[teacher_id])
    with db.session_scope() as session:
        once = read(session, [schedule_key(teacher_id)])[schedule_key(teacher_id)]
        schedule_changed(session, teacher_ids={teacher_id})
    with Session(db.engine) as session:
        twice = read(session, [schedule_key(teacher_id)])[schedule_key(teacher_id)]
    assert before == 0 and once != 0 and twice == once + 1


def test_the_teacher_list_pages_by_cursor_and_filters_by_subject_and_price(c):
    for name, subjects, rate in [
        ("Ada", ["Mathematics"], 4000),
        ("Bea", ["Physics"], 6000),
        ("Cy", ["Mathematics", "Physics"], 8000),
        ("Di", ["Mathematics"], 9000),
    ]:
        t = f.teacher(c, subjects=subjects, rate=rate)
        assert t["client"].put(
            "/api/Teachers/me",
            json={"subjects": subjects, "hourlyRate": rate, "currency": "usd", "timeZone": "UTC", "fullName": name},
        ).status_code == 200
    everyone = c.get("/api/Teachers").json()["data"]
    assert [t["fullName"] for t in everyone] == ["Ada", "Bea", "Cy", "Di"]
    first = c.get("/api/Teachers", params={"subject": "mathematics", "pageSize": 2})
    assert [t["fullName"] for t in first.json()["data"]] == ["Ada", "Cy"]
    nxt = first.headers["Link"].split(">")[0].lstrip("<")
    second = c.get(nxt)
    assert [t["fullName"] for t in second.json()["data"]] == ["Di"] and "Link" not in second.headers
    priced = c.get("/api/Teachers", params={"minRate": 5000, "maxRate": 8000}).json()["data"]
    assert [t["fullName"] for t in priced] == ["Bea", "Cy"]
    broken = c.get("/api/Teachers", params={"after": "not-a-cursor"})
    assert broken.status_code == 422 and broken.json()["data"][0]["field"] == "after"


def test_the_teacher_list_answers_304_until_a_teacher_changes(c):
    t = f.teacher(c, rate=5000)
    first = c.get("/api/Teachers")
    tag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, no-cache"
    again = c.get("/api/Teachers", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag
    other_query = c.get("/api/Teachers", params={"subject": "Physics"}, headers={"If-None-Match": tag})
    assert other_query.status_code == 200
    body = {"subjects": ["Mathematics"], "hourlyRate": 7000, "currency": "usd", "timeZone": "UTC"}
    assert t["client"].put("/api/Teachers/me", json=body).status_code == 200
    changed = c.get("/api/Teachers", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.json()["data"][0]["hourlyRate"] == 7000


def test_the_week_is_written_byte_for_byte_as_the_response_model_would_write_it(c):
    # The route writes its JSON itself (issue #33: no model per slot); what FastAPI would have
    # written for Envelope[list[SlotOut]] from the same starts is the reference.
    t = f.teacher(c)
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    params = {"from": start.isoformat(), "to": (start + timedelta(days=7)).isoformat(), "durationMinutes": 90}
    r = c.get(f"/api/Teachers/{t['user']['id']}/availability", params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    slots = r.json()["data"]
    assert len(slots) == 7 * 48  # all week, a start every 30 minutes (a session may end past `to`)
    starts = [datetime.fromisoformat(s["startsAt"].replace("Z", "+00:00")) for s in slots]
    model = Envelope[list[SlotOut]](data=[SlotOut(starts_at=s, ends_at=s + timedelta(minutes=90)) for s in starts])
    assert r.content == model.model_dump_json(by_alias=True).encode()


def test_render_slots_matches_the_model_for_odd_instants_too():
    odd = [
        datetime(2026, 3, 29, 0, 55, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, 0, 120, tzinfo=UTC),  # microseconds
        datetime(2026, 10, 25, 23, 59, 59, tzinfo=UTC),
    ]
    length = timedelta(minutes=45)
    model = Envelope[list[SlotOut]](data=[SlotOut(starts_at=s, ends_at=s + length) for s in odd])
    assert render_slots(odd, length) == model.model_dump_json(by_alias=True).encode()
    assert render_slots([], length) == Envelope[list[SlotOut]](data=[]).model_dump_json(by_alias=True).encode()


def test_a_kept_answer_is_the_computed_one_and_moves_with_the_schedule_and_with_now(c, db):
    # Issue #33: an answer for a range starting after `now` is kept, written, under the teacher's
    # schedule version; a range that has begun is worked out again (its starts depend on `now`).
    t, p = f.teacher(c), f.parent(c)
    teacher_id = uuid.UUID(t["user"]["id"])
    cache = availability.WeekCache()
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=7)
    written = []

    def render(starts):
        written.append(starts)
        return render_slots(starts, timedelta(minutes=60))

    def answer(now):
        with db.session_scope() as session:
            return availability.bookable_answer(
                session, cache=cache, teacher_id=teacher_id, start=start, end=end, minutes=60, now=now, render=render
            )

    def computed(now):
        with db.session_scope() as session:
            fresh = availability.WeekCache()
            starts = availability.bookable_starts(
                session, cache=fresh, teacher_id=teacher_id, start=start, end=end, minutes=60, now=now
            )
        return render_slots(starts, timedelta(minutes=60))

    before = start - timedelta(hours=1)
    first = answer(before)
    assert first == computed(before) and len(written) == 1
    assert answer(before + timedelta(minutes=30)) == first and len(written) == 1  # kept: `now` moved, not the schedule
    assert f.book(p, t, starts_at=f.slot(days=1, hour=10)).status_code == 201  # in that week
    after_booking = answer(before)
    assert after_booking != first and after_booking == computed(before) and len(written) == 2
    begun = start + timedelta(hours=5)  # the range has begun: its first five hours' starts are gone
    assert answer(begun) == computed(begun) != after_booking and len(written) == 3
    assert len(cache._answers) == 1
