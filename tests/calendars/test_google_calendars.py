"""A teacher's Google calendar as the second kind: its free/busy through the Google adapter
(recorded answers, no network) blocks times like an iCal calendar's; Tutorbook's own Meet events
in it (exactly a booking's time) neither block nor clash."""

import dataclasses
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from tests.calendars.test_calendars_api import busy_rows, starts
from tests.jobs import helpers as h
from tests.meetings.test_google_freebusy import TOKEN_OK
from tests.meetings.test_google_meet import RaisingHttpMockSequence, ok
from tutorbook import jobs
from tutorbook.calendars import service as calendars
from tutorbook.clock import utc_now
from tutorbook.meetings.google import GoogleMeetProvider
from tutorbook.notifications.models import Notification


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def google_services(api, answers: list):
    http = RaisingHttpMockSequence([TOKEN_OK, *answers])
    provider = GoogleMeetProvider(
        credentials_mode="oauth",
        oauth_client_id="client-id",
        oauth_client_secret="client-secret",
        refresh_token_for=lambda email: "1//refresh",
        http=http,
    )
    return dataclasses.replace(api.state.services, meetings=provider), http


def test_google_busy_times_block_and_tutorbooks_own_meet_events_do_not(c, api):
    x = h.confirmed(c, days=3, hour=14)
    t = x["t"]
    b_start = datetime.fromisoformat(x["b"]["startsAt"].replace("Z", "+00:00"))
    b_end = b_start + timedelta(hours=1)
    day = b_start.replace(hour=0)
    answer = {
        "calendars": {
            "primary": {
                "busy": [
                    {"start": z(day.replace(hour=10)), "end": z(day.replace(hour=11))},
                    {"start": z(b_start), "end": z(b_end)},  # the Meet adapter's event of the booking
                ]
            }
        }
    }
    empty = {"calendars": {"primary": {"busy": []}}}
    svc, http = google_services(api, [ok(answer)] + [ok(empty)] * 10)
    teacher_id = uuid.UUID(t["user"]["id"])
    with api.state.db.session_scope() as s:
        calendars.add_google(s, teacher_id=teacher_id, calendar_id="primary", now=utc_now())
    assert jobs.run("calendar-sync", svc, now=utc_now()).counts() == {"synced": 1}
    assert busy_rows(api) == 1
    found = starts(c, t, day, day + timedelta(days=1), minutes=60)
    assert day.replace(hour=10) not in found and day.replace(hour=9) in found and day.replace(hour=11) in found
    with api.state.db.session_scope() as s:
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(Notification)
                .where(Notification.kind == "calendar_conflict.teacher")
            )
            == 0
        )
    listed = t["client"].get("/api/Teachers/me/calendars").json()["data"]
    assert [(x["kind"], x["maskedUrl"], x["busyAhead"]) for x in listed] == [("google", "Google Calendar primary", 1)]


def test_a_google_calendar_google_cannot_read_shows_its_error(c, api):
    x = h.booked(c)
    svc, _ = google_services(api, [ok({"calendars": {"primary": {"errors": [{"reason": "notFound"}]}}})])
    with api.state.db.session_scope() as s:
        calendars.add_google(s, teacher_id=uuid.UUID(x["t"]["user"]["id"]), calendar_id="primary", now=utc_now())
    assert jobs.run("calendar-sync", svc, now=utc_now()).counts() == {"failed": 1}
    listed = x["t"]["client"].get("/api/Teachers/me/calendars").json()["data"][0]
    assert "cannot read primary (notFound)" in listed["lastError"]


def test_without_google_set_up_a_google_calendar_is_refused_clearly(c, api):
    x = h.booked(c)
    r = x["t"]["client"].post("/api/Teachers/me/calendars", json={"googleCalendarId": "primary"})
    assert r.status_code == 409 and "Google Calendar is not set up" in r.json()["message"]
    both = {"googleCalendarId": "primary", "icsUrl": "https://calendar.example.com/a.ics"}
    assert x["t"]["client"].post("/api/Teachers/me/calendars", json=both).status_code == 422
    assert x["t"]["client"].post("/api/Teachers/me/calendars", json={}).status_code == 422
