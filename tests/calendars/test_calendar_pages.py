"""/teacher/calendars over HTTP as a browser uses it: forms with CSRF, errors on the page, one
teacher's calendar out of another's reach, why a time is not offered."""

import pytest

from tests import factories as f
from tests.calendars import calendar_files as cal
from tests.calendars.test_google_calendars import google_services
from tests.meetings.test_google_meet import ok
from tests.web.helpers import WebClient, assert_clean, text_of


@pytest.fixture
def web(api):
    client = WebClient(api.state.base_url)
    yield client
    client.close()


def test_a_teacher_connects_asks_and_removes_on_the_page(c, dev_calendars, calendars, web):
    t = f.teacher(c, time_zone=cal.ZONE, windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    monday = cal.next_monday()
    url = calendars.serve("/secret-xyz/basic.ics", body=cal.calendar(cal.event("a@x", *cal.timed(monday, 10, 11))))
    web.login(t["email"])
    r = web.get("/teacher/calendars")
    assert r.status_code == 200 and "No calendar connected." in text_of(r)
    assert_clean(r)
    r = web.post("/teacher/calendars", {"ics_url": "ftp://example.com/x.ics"})
    assert r.status_code == 422 and "The address must start with https://" in text_of(r)
    r = web.post("/teacher/calendars", {"ics_url": url})
    assert r.status_code == 303
    page = text_of(web.get("/teacher/calendars"))
    assert "Calendar connected: 1 busy time ahead." in page and "secret-xyz" not in page
    r = web.get("/teacher/calendars", params={"at": f"{monday:%Y-%m-%d}T10:00", "duration": "60"})
    assert "Your calendar http://127.0.0.1/….ics is busy then" in text_of(r)
    r = web.get("/teacher/calendars", params={"at": f"{monday:%Y-%m-%d}T09:00", "duration": "60"})
    assert "This time is offered" in text_of(r)
    r = web.get("/teacher/calendars", params={"at": "not a time"})
    assert r.status_code == 200 and "Give a date and a time" in text_of(r)
    assert "Why is a time not offered?" in text_of(web.get(f"/teachers/{t['user']['id']}"))

    other = WebClient(dev_calendars.state.base_url)
    other.login(f.teacher(c)["email"])
    calendar_id = t["client"].get("/api/Teachers/me/calendars").json()["data"][0]["id"]
    r = other.post(f"/teacher/calendars/{calendar_id}/delete")
    assert r.status_code == 303 and len(t["client"].get("/api/Teachers/me/calendars").json()["data"]) == 1
    assert "Why is a time not offered?" not in text_of(other.get(f"/teachers/{t['user']['id']}"))
    other.close()
    assert web.post(f"/teacher/calendars/{calendar_id}/delete").status_code == 303
    assert t["client"].get("/api/Teachers/me/calendars").json()["data"] == []


def test_an_unreadable_calendar_is_connected_and_says_why(c, dev_calendars, calendars, web):
    t = f.teacher(c, time_zone=cal.ZONE)
    web.login(t["email"])
    r = web.post("/teacher/calendars", {"ics_url": calendars.serve("/gone.ics", status=404)})
    assert r.status_code == 303
    page = text_of(web.get("/teacher/calendars"))
    assert "Calendar connected, but it could not be read" in page and "answered 404" in page


def test_parents_cannot_open_the_calendars_page(c, api, web):
    p = f.parent(c)
    web.login(p["email"])
    assert web.get("/teacher/calendars").status_code == 403


def test_with_google_set_up_a_teacher_connects_a_google_calendar_on_the_page(c, api, web, monkeypatch):
    empty = {"calendars": {"work@school.org": {"busy": []}}}
    google_svc, _ = google_services(api, [ok(empty)] * 10)
    monkeypatch.setattr(api.state.services, "meetings", google_svc.meetings)
    t = f.teacher(c, time_zone=cal.ZONE)
    web.login(t["email"])
    assert "Connect a Google calendar" in text_of(web.get("/teacher/calendars"))
    r = web.post("/teacher/calendars", {"google_calendar_id": "work@school.org"})
    assert r.status_code == 303
    page = text_of(web.get("/teacher/calendars"))
    assert "Calendar connected: 0 busy times ahead." in page and "Google Calendar work@school.org" in page
