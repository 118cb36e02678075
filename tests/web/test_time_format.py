"""One time format on every page: the viewer's zone (the browser's cookie, else the profile's)
and the viewer's language (Accept-Language), through tutorbook.localtime, for an en-US viewer in
New York: 12-hour clocks with the zone's abbreviation, never 24-hour en-GB or raw zone ids."""

from __future__ import annotations

import re

from tests.bookings.test_reschedule import confirmed
from tests.web.helpers import WebClient, assert_clean, text_of

US = {"Accept-Language": "en-US,en;q=0.9"}


def us_viewer(api, email: str) -> WebClient:
    web = WebClient(api.state.base_url)
    web.http.headers.update(US)
    web.http.cookies.set("tutorbook_zone", "America%2FNew_York")
    web.login(email)
    return web


def plain(r) -> str:
    return text_of(r).replace("\u202f", " ")


def test_the_reschedule_page_and_its_flash_message_use_the_viewers_12_hour_clock_and_zone(api, c):
    t, p, b = confirmed(c, days=3)
    web = us_viewer(api, p["email"])
    r = web.get(f"/bookings/{b['id']}/reschedule", params={"week": 1})
    assert_clean(r)
    text = plain(r)
    assert re.search(r"\b\d{1,2}:\d\d (AM|PM)\b", text), text
    assert not re.search(r"\b(1[3-9]|2[0-3]):\d\d\b", text), text  # no 24-hour times
    target = re.findall(r'name="starts_at" value="([^"]+)"', r.text)[0]
    r = web.post(f"/bookings/{b['id']}/reschedule", {"starts_at": target, "week": "1"})
    assert r.status_code == 303
    flash = plain(web.get(r.headers["location"])).split("Session moved to ", 1)[1][:80]
    assert re.match(r"\w{3}, \w{3} \d{1,2}, \d{4}, \d{1,2}:\d\d (AM|PM)–\d{1,2}:\d\d (AM|PM) E[SD]T", flash), flash
    web.close()


def test_the_admin_booking_page_uses_the_admins_zone_like_the_list_and_not_utc_twice(api, c, admin):
    t, p, b = confirmed(c, days=3, hour=20)
    web = us_viewer(api, admin["email"])  # the admin's profile zone is UTC; the browser's is New York
    listing = plain(web.get("/admin/bookings", params={"q": b["id"]}))
    page = web.get(f"/admin/bookings/{b['id']}")
    assert_clean(page)
    text = plain(page)
    when = re.search(r"When (\w{3}, \w{3} \d{1,2}, \d{4}), (\d{1,2}:\d\d (AM|PM))–\S+ (AM|PM) (E[SD]T)", text)
    assert when, text
    assert f"{when.group(1)} {when.group(2)}" in listing  # the list shows the same day and clock
    assert text.count("When") >= 1 and "When (UTC)" not in text and "When (America/New_York)" not in text
    web.close()


def test_earnings_are_written_in_the_teachers_language(api, c):
    t, p, b = confirmed(c, days=3)
    web = us_viewer(api, t["email"])
    r = web.get("/teacher/earnings")
    assert_clean(r)
    text = plain(r)
    months = "January|February|March|April|May|June|July|August|September|October|November|December"
    assert re.search(rf"({months}) \d{{4}}", text), text
    assert re.search(r"\b\d{1,2}:\d\d (AM|PM)\b", text)
    web.close()


def test_a_booking_page_for_a_uk_viewer_stays_24_hour(api, c):
    t, p, b = confirmed(c, days=3)
    web = WebClient(api.state.base_url)
    web.http.headers.update({"Accept-Language": "en-GB"})
    web.login(p["email"])
    text = plain(web.get(f"/bookings/{b['id']}/reschedule", params={"week": 1}))
    assert "AM" not in text and "PM" not in text and re.search(r"\b\d\d:\d\d\b", text)
    web.close()


def test_an_unpaid_holds_deadline_is_given_with_its_zone(api, c):
    from tests.jobs.helpers import booked

    x = booked(c)
    web = us_viewer(api, x["p"]["email"])
    text = plain(web.get("/children"))  # the banner on every page but My Bookings
    held = text.split("held for you until ", 1)[1].split(";", 1)[0]
    assert re.search(r"\d{1,2}:\d\d (AM|PM) E[SD]T$", held), held
    listed = plain(web.get("/my-bookings")).split("open until ", 1)[1][:40]
    assert re.search(r"\d{1,2}:\d\d (AM|PM) E[SD]T", listed), listed
    web.close()
