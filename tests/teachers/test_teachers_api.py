"""Teacher profiles, weekly hours and free slots over HTTP."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import factories as f
from tutorbook import currencies
from tutorbook.bookings.reserving import price_for
from tutorbook.config import ALLOWED_DURATIONS
from tutorbook.teachers.models import TeacherProfile


def test_teachers_are_listed_with_subjects_and_price(c):
    t = f.teacher(c, subjects=["Physics"], rate=5500, currency="EUR", time_zone="Europe/Berlin")
    listed = c.get("/api/Teachers").json()["data"]
    assert listed == [c.get(f"/api/Teachers/{t['user']['id']}").json()["data"]]
    assert listed[0]["subjects"] == ["Physics"] and listed[0]["hourlyRate"] == 5500
    assert listed[0]["currency"] == "eur" and listed[0]["timeZone"] == "Europe/Berlin"
    assert c.get("/api/Teachers", params={"subject": "chemistry"}).json()["data"] == []


@pytest.mark.parametrize(
    "field,value",
    [
        ("hourlyRate", -1),
        ("hourlyRate", 10**12),
        ("timeZone", "Mars/Olympus"),
        ("currency", "dollars"),
        ("subjects", []),
    ],
)
def test_bad_profiles_are_422_and_change_nothing(c, field, value):
    t = f.teacher(c, rate=4000)
    body = {"subjects": ["Maths"], "hourlyRate": 4000, "currency": "usd", "timeZone": "UTC", field: value}
    r = t["client"].put("/api/Teachers/me", json=body)
    assert r.status_code == 422 and r.json()["data"][0]["field"] == field
    assert c.get(f"/api/Teachers/{t['user']['id']}").json()["data"]["hourlyRate"] == 4000


def test_a_parent_cannot_edit_a_teacher_profile(c):
    p = f.register(c)
    r = p["client"].put(
        "/api/Teachers/me", json={"subjects": ["X"], "hourlyRate": 1, "currency": "usd", "timeZone": "UTC"}
    )
    assert r.status_code == 403


def test_free_slots_follow_the_teachers_zone_across_the_dst_change(c):
    t = f.teacher(c, time_zone="America/New_York", windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    # Only meaningful while these dates are ahead; the zone logic itself is unit-tested in test_slots.
    year = datetime.now(UTC).year + 1
    r = c.get(
        f"/api/Teachers/{t['user']['id']}/availability",
        params={"from": f"{year}-03-01T00:00:00Z", "to": f"{year}-03-17T00:00:00Z"},
    )
    assert r.status_code == 200
    # Each Monday's first start is 09:00 local (the list holds every bookable start since #13).
    firsts = {}
    for s in r.json()["data"]:
        firsts.setdefault(s["startsAt"][:10], s["startsAt"])
    hours = sorted({s[11:13] for s in firsts.values()})
    assert hours == ["13", "14"]  # 09:00 EDT = 13:00Z after the change, 09:00 EST = 14:00Z before


def test_availability_refuses_bad_ranges_and_unknown_teachers(c):
    t = f.teacher(c)
    tid = t["user"]["id"]
    now = datetime.now(UTC)
    assert (
        c.get(
            f"/api/Teachers/{tid}/availability",
            params={"from": now.isoformat(), "to": (now - timedelta(days=1)).isoformat()},
        ).status_code
        == 422
    )
    assert (
        c.get(
            f"/api/Teachers/{tid}/availability",
            params={"from": now.isoformat(), "to": (now + timedelta(days=90)).isoformat()},
        ).status_code
        == 422
    )
    assert c.get(f"/api/Teachers/{tid}/availability", params={"from": "yesterday"}).status_code == 422
    assert c.get("/api/Teachers/00000000-0000-0000-0000-000000000000/availability").status_code == 404


def test_bad_windows_are_refused(c):
    t = f.teacher(c)
    for window in (
        {"weekday": 7, "start": "09:00", "end": "10:00"},
        {"weekday": 1, "start": "10:00", "end": "09:00"},
        {"weekday": 1, "start": "25:00", "end": "26:00"},
    ):
        assert t["client"].put("/api/Teachers/me/availability", json={"windows": [window]}).status_code == 422


def test_no_teacher_email_is_published_by_the_api_or_the_pages(c):
    t = f.teacher(c)
    email, tid = t["email"], t["user"]["id"]
    for path in ("/api/Teachers", f"/api/Teachers/{tid}", "/", f"/teachers/{tid}"):
        r = c.get(path)
        assert r.status_code == 200 and t["user"]["fullName"] in r.text, path
        assert email not in r.text and "email" not in r.text.lower(), path


def test_a_teacher_is_listed_only_with_a_price_subjects_and_weekly_hours(c):
    t = f.register(c, role="Teacher")
    name = t["user"]["fullName"]

    def listed() -> bool:
        api = [x["fullName"] for x in c.get("/api/Teachers").json()["data"]]
        page = c.get("/").text
        assert (name in api) == (name in page)
        return name in api

    assert not listed()  # a fresh account: no price, no subjects, no hours
    profile = {"subjects": ["Physics"], "hourlyRate": 5000, "currency": "usd", "timeZone": "UTC"}
    assert t["client"].put("/api/Teachers/me", json=profile).status_code == 200
    assert not listed()  # still no weekly hours
    assert t["client"].put("/api/Teachers/me/availability", json={"windows": f.ALL_WEEK}).status_code == 200
    assert listed()
    assert t["client"].put("/api/Teachers/me", json={**profile, "hourlyRate": 0}).status_code == 200
    assert not listed()
    assert t["client"].put("/api/Teachers/me", json=profile).status_code == 200
    assert t["client"].put("/api/Teachers/me/availability", json={"windows": []}).status_code == 200
    assert not listed()


@pytest.mark.parametrize(
    "currency,rate,field,says",
    [
        ("xyz", 5000, "currency", "not a currency Tutorbook can charge in"),
        ("bgn", 5000, "currency", "not a currency Tutorbook can charge in"),
        ("kwd", 50000, "currency", "not a currency Tutorbook can charge in"),  # Stripe has no minimum for it
        ("usd", 98, "hourlyRate", "at least USD 0.99 an hour"),  # 30 minutes of 0.99: 0.495 -> 0.50
        ("gbp", 58, "hourlyRate", "at least GBP 0.59 an hour"),  # 30 minutes: 0.30
        ("jpy", 98, "hourlyRate", "at least JPY 99 an hour"),  # 30 minutes: 50 yen
        ("huf", 34998, "hourlyRate", "at least HUF 349.99 an hour"),  # 30 minutes: 175.00 Ft
    ],
)
def test_a_currency_stripe_cannot_charge_or_a_rate_under_its_minimum_is_a_422_naming_the_field(
    c, currency, rate, field, says
):
    t = f.teacher(c, rate=4000)
    body = {"subjects": ["Maths"], "hourlyRate": rate, "currency": currency, "timeZone": "UTC"}
    r = t["client"].put("/api/Teachers/me", json=body)
    assert r.status_code == 422, r.text
    [problem] = r.json()["data"]
    assert problem["field"] == field and says in problem["message"]
    assert c.get(f"/api/Teachers/{t['user']['id']}").json()["data"]["hourlyRate"] == 4000


@pytest.mark.parametrize("currency,rate", [("usd", 99), ("gbp", 59), ("jpy", 99), ("huf", 34999), ("eur", 0)])
def test_the_least_rate_whose_shortest_session_reaches_the_minimum_is_accepted(c, currency, rate):
    t = f.teacher(c, rate=4000)
    body = {"subjects": ["Maths"], "hourlyRate": rate, "currency": currency.upper(), "timeZone": "UTC"}
    r = t["client"].put("/api/Teachers/me", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["currency"] == currency and r.json()["data"]["hourlyRate"] == rate


def test_minimum_rate_matches_the_bookings_rounding_for_every_currency_and_length():
    for currency in currencies.SUPPORTED.values():
        for minutes in ALLOWED_DURATIONS:
            least = currencies.minimum_rate(currency, minutes=minutes)
            assert price_for(hourly_rate=least, minutes=minutes) >= currency.minimum
            assert least == 1 or price_for(hourly_rate=least - 1, minutes=minutes) < currency.minimum


def test_a_profile_saved_before_the_rules_cannot_be_booked_under_the_minimum(api, c):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    with api.state.db.session_scope() as s:
        s.execute(
            sa.update(TeacherProfile).where(TeacherProfile.user_id == uuid.UUID(t["user"]["id"])).values(hourly_rate=90)
        )
    r = f.book(p, t, duration=30)
    assert r.status_code == 422 and r.json()["data"][0]["field"] == "durationMinutes", r.text
    assert "USD 0.45 is under the minimum charge, USD 0.50" in r.json()["data"][0]["message"]
    with api.state.db.session_scope() as s:
        s.execute(
            sa.update(TeacherProfile).where(TeacherProfile.user_id == uuid.UUID(t["user"]["id"])).values(currency="xyz")
        )
    r = f.book(p, t, duration=60)
    assert r.status_code == 422 and "cannot be charged" in r.json()["data"][0]["message"], r.text
