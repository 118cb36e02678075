"""Teacher profiles, weekly hours and free slots over HTTP."""

from datetime import UTC, datetime, timedelta

import pytest

from tests import factories as f


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
