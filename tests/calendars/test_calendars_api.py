"""Issue #30 over HTTP: a teacher connects calendars served from a local server; the
`calendar-sync` job reads them; availability leaves out exactly their busy times, booking checks
them again, a paid session they overlap is told once and kept."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests import factories as f
from tests.calendars import calendar_files as cal
from tests.jobs import helpers as h
from tests.web.helpers import WebClient, text_of
from tutorbook.bookings.models import Booking
from tutorbook.calendars.models import BusyPeriod, TeacherCalendar
from tutorbook.notifications.models import DevMail, Notification

HALF_HOUR = timedelta(minutes=30)


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def starts(c, teacher, start: datetime, end: datetime, minutes: int = 30) -> list[datetime]:
    params = {"from": z(start), "to": z(end), "durationMinutes": minutes}
    r = c.get(f"/api/Teachers/{teacher['user']['id']}/availability", params=params)
    assert r.status_code == 200, r.text
    return [datetime.fromisoformat(s["startsAt"].replace("Z", "+00:00")) for s in r.json()["data"]]


def expected_starts(start: datetime, end: datetime, busy, minutes: int = 30) -> list[datetime]:
    """Every half hour of an all-week teacher, but those a busy period overlaps."""
    out, t, length = [], start, timedelta(minutes=minutes)
    while t < end:
        if not any(bs < t + length and be > t for bs, be in busy):
            out.append(t)
        t += HALF_HOUR
    return out


def connect(t, url: str):
    r = t["client"].post("/api/Teachers/me/calendars", json={"icsUrl": url})
    assert r.status_code == 201, r.text
    return r.json()["data"]


def sync(api, **kwargs):
    return h.run(api, "calendar-sync", **kwargs)


def berlin_teacher(c):
    return f.teacher(c, time_zone=cal.ZONE)


def test_a_teacher_connects_lists_and_removes_a_calendar_and_the_address_stays_secret(c, dev_calendars, calendars):
    t = berlin_teacher(c)
    url = calendars.serve("/private/s3cr3t-token/basic.ics", body=cal.calendar())
    added = connect(t, url)
    assert added["maskedUrl"] == f"{calendars.base_url.split(':')[0]}://127.0.0.1/….ics"
    assert "s3cr3t" not in str(added) and added["busyAhead"] == 0
    assert added["lastSyncedAt"] and added["lastError"] is None  # read at once
    again = t["client"].post("/api/Teachers/me/calendars", json={"icsUrl": url})
    assert again.status_code == 409
    listed = t["client"].get("/api/Teachers/me/calendars").json()["data"]
    assert [x["id"] for x in listed] == [added["id"]] and "s3cr3t" not in str(listed)
    other = berlin_teacher(c)
    assert other["client"].delete(f"/api/Teachers/me/calendars/{added['id']}").status_code == 404
    assert t["client"].delete(f"/api/Teachers/me/calendars/{added['id']}").status_code == 200
    assert t["client"].get("/api/Teachers/me/calendars").json()["data"] == []


def test_bad_addresses_are_refused_with_the_field_named(c, api):
    t = berlin_teacher(c)
    for bad in ["ftp://example.com/a.ics", "http://example.com/a.ics", "not a url at all", "https://"]:
        r = t["client"].post("/api/Teachers/me/calendars", json={"icsUrl": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["success"] is False
    p = f.parent(c)
    assert p["client"].post("/api/Teachers/me/calendars", json={"icsUrl": "https://x.example/a.ics"}).status_code == 403


def test_availability_leaves_out_exactly_the_busy_periods(c, dev_calendars, calendars):
    t = berlin_teacher(c)
    monday = cal.next_monday()
    change = cal.next_clock_change(monday + timedelta(days=22))
    own_host = "127.0.0.1"  # the live app's public URL: Tutorbook's own events carry it
    busy = cal.expected_busy(monday, change)
    added = connect(t, calendars.serve("/t.ics", body=cal.the_calendar(monday, change, own_host=own_host)))
    assert added["busyAhead"] == len(busy)  # read at once
    assert sync(dev_calendars).counts() == {"unchanged": 1}
    start, end = cal.local(monday, 0), cal.local(monday + timedelta(days=28), 0)
    assert starts(c, t, start, end) == expected_starts(start, end, busy)
    # the day the clocks change: all of it, 23 or 25 hours, and the days around it untouched
    day_before, day_after = change - timedelta(days=1), change + timedelta(days=2)
    start, end = cal.local(day_before, 0), cal.local(day_after, 0)
    found = starts(c, t, start, end)
    assert found == expected_starts(start, end, busy)
    assert not any(cal.local(change, 0) <= s < cal.local(change + timedelta(days=1), 0) for s in found)
    listed = t["client"].get("/api/Teachers/me/calendars").json()["data"][0]
    assert listed["busyAhead"] == len(busy) and listed["lastError"] is None and listed["lastSyncedAt"]


def test_an_unchanged_calendar_is_asked_for_conditionally_and_kept(c, dev_calendars, calendars, api):
    t = berlin_teacher(c)
    monday = cal.next_monday()
    url = calendars.serve("/t.ics", body=cal.calendar(cal.event("a@x", *cal.timed(monday, 10, 11))))
    assert connect(t, url)["busyAhead"] == 1
    assert sync(dev_calendars).counts() == {"unchanged": 1}
    assert calendars.routes["/t.ics"].hits[-1].get("if-none-match")
    calendars.serve("/t.ics", body=cal.calendar(cal.event("b@x", *cal.timed(monday, 12, 13))))
    assert sync(dev_calendars).counts() == {"synced": 1}
    assert busy_rows(api) == 1


def busy_rows(api) -> int:
    with api.state.db.session_scope() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(BusyPeriod))


def test_a_time_that_became_busy_after_it_was_shown_is_refused_with_a_clear_409(c, dev_calendars, calendars):
    t, p = berlin_teacher(c), f.parent(c)
    monday = cal.next_monday()
    url = calendars.serve("/t.ics", body=cal.calendar())
    connect(t, url)
    at = cal.local(monday, 14)
    assert at in starts(c, t, cal.local(monday, 0), cal.local(monday, 23))  # shown to the parent
    calendars.serve("/t.ics", body=cal.calendar(cal.event("new@x", *cal.timed(monday, 14, 15))))
    assert sync(dev_calendars).counts() == {"synced": 1}
    r = f.book(p, t, starts_at=z(at), duration=60)
    assert r.status_code == 409, r.text
    assert r.json()["success"] is False and "calendar" in r.json()["message"]
    assert f.book(p, t, starts_at=z(cal.local(monday, 15)), duration=60).status_code == 201


def test_a_paid_session_a_calendar_now_overlaps_is_told_once_and_kept(c, dev_calendars, calendars, api):
    x = h.confirmed(c, teacher=berlin_teacher(c), days=3, hour=14)
    t, booking_id = x["t"], x["b"]["id"]
    starts_at = datetime.fromisoformat(x["b"]["startsAt"].replace("Z", "+00:00"))
    day = starts_at.astimezone(cal.TZ).date()
    hour = starts_at.astimezone(cal.TZ).hour
    url = calendars.serve("/t.ics", body=cal.calendar(cal.event("clash@x", *cal.timed(day, hour, hour + 1))))
    connect(t, url)  # read at once: the clash is told then
    calendars.serve(
        "/t.ics",
        body=cal.calendar(
            cal.event("clash@x", *cal.timed(day, hour, hour + 1)), cal.event("other@x", *cal.timed(day, 6, 7))
        ),
    )
    assert sync(dev_calendars).counts() == {"synced": 1}  # changed again: still one email
    with api.state.db.session_scope() as s:
        notes = s.scalars(sa.select(Notification).where(Notification.kind == "calendar_conflict.teacher")).all()
        assert [(str(n.booking_id), n.to_address) for n in notes] == [(booking_id, t["email"])]
        assert s.get(Booking, notes[0].booking_id).status == 1  # nothing cancelled
    h.run(api, "mail")
    with api.state.db.session_scope() as s:
        mails = s.scalars(sa.select(DevMail).where(DevMail.subject.like("Your calendar is busy%"))).all()
        assert [m.to_address for m in mails] == [t["email"]]
    web = WebClient(api.state.base_url)
    web.login(t["email"])
    page = text_of(web.get("/schedule"))
    assert "is busy during this session" in page


def test_a_broken_calendar_shows_its_error_keeps_its_last_busy_times_then_goes_stale(c, dev_calendars, calendars, api):
    t = berlin_teacher(c)
    monday = cal.next_monday()
    url = calendars.serve("/t.ics", body=cal.calendar(cal.event("a@x", *cal.timed(monday, 10, 11))))
    connect(t, url)
    sync(dev_calendars)
    calendars.serve("/t.ics", status=500)
    assert sync(dev_calendars).counts() == {"failed": 1}
    listed = t["client"].get("/api/Teachers/me/calendars").json()["data"][0]
    assert "500" in listed["lastError"] and listed["busyAhead"] == 1 and listed["stale"] is False
    later = datetime.now(UTC) + timedelta(hours=dev_calendars.state.settings.calendar_stale_hours + 1)
    assert sync(dev_calendars, now=later).counts() == {"stale": 1}
    assert busy_rows(api) == 0
    with api.state.db.session_scope() as s:
        row = s.scalars(sa.select(TeacherCalendar)).one()
        assert row.last_error and row.etag is None
    assert sync(dev_calendars, now=later + timedelta(minutes=5)).counts() == {"failed": 1}  # told once
    h.run(api, "mail", now=later + timedelta(minutes=10))
    with api.state.db.session_scope() as s:
        mails = s.scalars(sa.select(DevMail).where(DevMail.subject.like("Your calendar % can no longer be read"))).all()
        assert [m.to_address for m in mails] == [t["email"]]
        assert "answered 500" in mails[0].raw and "/t.ics" not in mails[0].raw


def test_why_a_time_is_not_offered_names_every_rule_but_never_an_event_title(c, dev_calendars, calendars):
    t = f.teacher(c, time_zone=cal.ZONE, windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    monday = cal.next_monday()
    body = cal.calendar(cal.event("a@x", "SUMMARY:Private dentist", *cal.timed(monday, 10, 11)))
    connect(t, calendars.serve("/t.ics", body=body))
    sync(dev_calendars)
    ask = {"at": z(cal.local(monday, 10)), "durationMinutes": 60}
    r = t["client"].get("/api/Teachers/me/why-not", params=ask)
    assert r.status_code == 200, r.text
    found = r.json()["data"]
    assert found["offered"] is False
    assert [r["rule"] for r in found["reasons"]] == ["calendar"]
    assert found["reasons"][0]["startsAt"] == z(cal.local(monday, 10)) and "dentist" not in str(found)
    ask["at"] = z(cal.local(monday, 11, 30))
    rules = [r["rule"] for r in t["client"].get("/api/Teachers/me/why-not", params=ask).json()["data"]["reasons"]]
    assert rules == ["hours"]
    ask["at"] = z(cal.local(monday, 9))
    assert t["client"].get("/api/Teachers/me/why-not", params=ask).json()["data"] == {"offered": True, "reasons": []}


def test_a_paid_session_cannot_be_moved_into_a_busy_time(c, dev_calendars, calendars):
    x = h.confirmed(c, teacher=berlin_teacher(c), days=3, hour=14)
    starts_at = datetime.fromisoformat(x["b"]["startsAt"].replace("Z", "+00:00"))
    day = (starts_at + timedelta(days=1)).astimezone(cal.TZ).date()
    connect(x["t"], calendars.serve("/t.ics", body=cal.calendar(cal.event("a@x", *cal.timed(day, 10, 11)))))
    move = x["p"]["client"].post(
        f"/api/Sessions/{x['b']['id']}/reschedule", json={"startsAt": z(cal.local(day, 10, 30))}
    )
    assert move.status_code == 409 and "calendar" in move.json()["message"]
    moved = x["p"]["client"].post(f"/api/Sessions/{x['b']['id']}/reschedule", json={"startsAt": z(cal.local(day, 11))})
    assert moved.status_code == 200, moved.text
