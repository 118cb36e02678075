"""Issue #13 through the pages: a teacher's checklist and setup, keeping the parent's place,
the unpaid-booking banner, the lists, Add to calendar, the checkout's line item, zones and language."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from icalendar import Calendar

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import http_get
from tests.web.helpers import WebClient, assert_clean, move_into_past, text_of
from tutorbook.web.core import safe_next


def register(web: WebClient, *, role: str, name: str, next: str = "", zone: str = "UTC") -> tuple[str, object]:
    email = f"{name.split()[0].lower()}-{datetime.now(UTC).timestamp()}@example.com"
    page = web.get("/register" + (f"?next={quote(next, safe='')}" if next else ""))
    assert_clean(page)
    form = {"full_name": name, "email": email, "password": f.PASSWORD, "role": role, "time_zone": zone}
    if next:
        assert f'name="next" value="{html.escape(next)}"' in page.text
        form["next"] = next
    return email, web.post("/register", form)


def test_a_teacher_registers_and_completes_the_checklist_on_the_web(api, web, c):
    email, r = register(web, role="Teacher", name="Marie Curie", zone="Europe/Paris")
    assert r.status_code == 303 and r.headers["location"] == "/teacher/profile"
    page = web.get("/teacher/profile")
    assert_clean(page)
    assert "Before parents can find you" in text_of(page)
    assert text_of(page).count("(to do)") == 3
    assert c.get("/api/Teachers").json()["data"] == []
    bad = web.post(
        "/teacher/profile",
        {
            "full_name": "Marie Curie",
            "subjects": "Chemistry",
            "hourly_rate": "lots",
            "currency": "eur",
            "time_zone": "Europe/Paris",
            "bio": "",
        },
    )
    assert bad.status_code == 422 and "Hourly rate" in text_of(bad)
    assert_clean(bad)
    r = web.post(
        "/teacher/profile",
        {
            "full_name": "Marie Curie",
            "subjects": "Chemistry, Physics",
            "hourly_rate": "50.00",
            "currency": "eur",
            "time_zone": "Europe/Paris",
            "bio": "Two Nobel prizes",
        },
    )
    assert r.status_code == 303
    page = web.get("/teacher/profile")
    assert text_of(page).count("(to do)") == 1 and "Add at least one weekly window of hours" in text_of(page)
    # Hours: two rows, one then removed; an empty row is ignored; end 00:00 is midnight.
    r = web.post(
        "/teacher/hours",
        {
            "rows": "3",
            "weekday_0": "0",
            "start_0": "09:00",
            "end_0": "12:00",
            "weekday_1": "2",
            "start_1": "20:00",
            "end_1": "00:00",
        },
    )
    assert r.status_code == 303
    t = c.get("/api/Teachers").json()["data"]
    assert [x["fullName"] for x in t] == ["Marie Curie"] and t[0]["hourlyRate"] == 5000 and t[0]["currency"] == "eur"
    page = web.get("/teacher/hours")
    assert "You are listed" in text_of(page) and 'value="20:00"' in page.text
    r = web.post(
        "/teacher/hours",
        {
            "rows": "2",
            "weekday_0": "0",
            "start_0": "09:00",
            "end_0": "12:00",
            "weekday_1": "2",
            "start_1": "20:00",
            "end_1": "00:00",
            "remove_1": "1",
        },
    )
    token = f.login(c, email=email)
    mine = c.get("/api/Teachers/me/availability", headers={"Authorization": f"Bearer {token}"}).json()["data"]
    assert mine == [{"weekday": 0, "start": "09:00", "end": "12:00"}]
    bad = web.post("/teacher/hours", {"rows": "1", "weekday_0": "0", "start_0": "12:00", "end_0": "09:00"})
    assert bad.status_code == 422 and "end after the start" in text_of(bad)
    assert_clean(bad)


def test_time_off_on_the_web_lists_paid_sessions_inside_it(api, web, c, parent):
    t = f.teacher(c, windows=f.ALL_WEEK)
    starts = f.slot(days=5, hour=10)
    b = f.book(parent, t, starts_at=starts).json()["data"]
    pay.pay(b["checkoutUrl"])
    parent["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    web.login(t["email"])
    day = datetime.fromisoformat(starts.replace("Z", "+00:00"))
    r = web.post(
        "/teacher/time-off",
        {"starts_at": f"{day:%Y-%m-%d}T00:00", "ends_at": f"{day:%Y-%m-%d}T23:59", "note": "Conference"},
    )
    assert r.status_code == 303
    page = web.get("/teacher/time-off")
    assert_clean(page)
    text = text_of(page)
    assert "Conference" in text and "Still booked inside this time off" in text and parent["email"] in text
    assert f"/bookings/{b['id']}/cancel" in page.text
    assert pay.booking_row(api.state.db, b["id"]).status == 1
    bad = web.post("/teacher/time-off", {"starts_at": "tomorrow", "ends_at": "", "note": ""})
    assert bad.status_code == 422
    assert_clean(bad)
    off = t["client"].get("/api/Teachers/me/time-off").json()["data"][0]["id"]
    assert web.post(f"/teacher/time-off/{off}/delete").status_code == 303
    assert t["client"].get("/api/Teachers/me/time-off").json()["data"] == []


def test_register_from_a_teacher_page_comes_back_to_it_after_the_first_child(api, web, teacher):
    back = f"/teachers/{teacher['user']['id']}?week=1&duration=30"
    page = web.get(back)
    assert f"/register?next={quote(back, safe='/')}" in page.text
    _, r = register(web, role="Parent", name="Pat Parent", next=back)
    assert r.status_code == 303 and r.headers["location"] == f"/children?next={quote(back, safe='')}"
    page = web.get(r.headers["location"])
    assert f'name="next" value="{html.escape(back)}"' in page.text
    r = web.post("/children", {"full_name": "Robin", "next": back})
    assert r.status_code == 303 and r.headers["location"] == back


def test_next_only_ever_leads_to_this_site():
    for bad in (
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "http:/x",
        "/a\r\nSet-Cookie: x",
        "",
        None,
    ):
        assert safe_next(bad) is None, bad
    assert safe_next("/teachers/1?week=2&duration=90") == "/teachers/1?week=2&duration=90"


def test_the_teacher_page_offers_only_starts_that_fit_the_chosen_length(api, web, c):
    t = f.teacher(c, windows=[{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)])
    counts = {}
    for minutes in (30, 60, 90, 120):
        page = web.get(f"/teachers/{t['user']['id']}?week=1&duration={minutes}")
        assert_clean(page)
        counts[minutes] = page.text.count("data-start=")
    assert counts == {30: 7 * 4, 60: 7 * 3, 90: 7 * 2, 120: 7}


def test_an_unpaid_booking_shows_a_banner_on_every_page_until_paid(api, parent_web, parent, teacher, booking):
    for path in ("/", f"/teachers/{teacher['user']['id']}", "/children", "/time-zone"):
        page = parent_web.get(path)
        assert_clean(page)
        assert "You have an unpaid booking" in text_of(page), path
        assert f'href="{booking["checkoutUrl"]}"' in page.text and f"/bookings/{booking['id']}/cancel" in page.text
    page = parent_web.get("/my-bookings")  # lists it with the same actions, no banner twice
    assert "You have an unpaid booking" not in text_of(page) and "Resume payment" in text_of(page)
    pay.pay(booking["checkoutUrl"])
    parent["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}")
    assert "unpaid booking" not in text_of(parent_web.get("/"))


def test_the_checkout_line_item_names_subject_teacher_child_and_time_in_the_parents_zone(api, sandbox, c):
    t = f.teacher(c, subjects=["Chemistry"], windows=f.ALL_WEEK)
    p = f.register(c, role="Parent", time_zone="America/New_York")
    robin = f.child(p["client"], full_name="Robin Park")["id"]
    start = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0) + timedelta(days=40)
    booking = f.book(
        p, t, subject="Chemistry", starts_at=start.isoformat().replace("+00:00", "Z"), student=robin
    ).json()["data"]
    checkout = pay.sandbox_session(sandbox, booking["stripeSessionId"])
    items = http_get(
        f"{sandbox.base_url}/v1/checkout/sessions/{checkout['id']}/line_items",
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=30,
    ).json()["data"]
    ny = start.astimezone(ZoneInfo("America/New_York"))
    when = f"{ny:%a}, {ny.day} {ny:%b %Y}, {ny:%H:%M}–{ny + timedelta(hours=1):%H:%M} {ny:%Z}"
    assert items[0]["description"] == f"Chemistry with {t['user']['fullName']} for Robin Park, {when}"


def test_my_bookings_has_upcoming_soonest_first_then_past_with_calendar_and_book_again(api, parent_web, parent, c):
    t = f.teacher(c)
    later, sooner, done = (f.book(parent, t, starts_at=f.slot(days=d)).json()["data"] for d in (9, 3, 5))
    for b in (later, sooner, done):
        pay.pay(b["checkoutUrl"])
        parent["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    move_into_past(api.state.db, done["id"])
    page = parent_web.get("/my-bookings")
    assert_clean(page)
    upcoming, past = page.text.split('id="past-title"')
    assert upcoming.index(f"/bookings/{sooner['id']}/") < upcoming.index(f"/bookings/{later['id']}/")
    assert f"/bookings/{done['id']}/calendar.ics" in past and f"/bookings/{done['id']}/cancel" not in past
    assert f"/teachers/{t['user']['id']}?duration=60" in page.text and "Book again" in page.text
    r = parent_web.get(f"/bookings/{sooner['id']}/calendar.ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    event = Calendar.from_ical(r.content).walk("VEVENT")[0]
    assert event.decoded("dtstart") == datetime.fromisoformat(sooner["startsAt"].replace("Z", "+00:00"))
    assert "Mathematics with" in str(event["summary"]) and str(event["url"]).startswith("https://meet.jit.si/")
    other = WebClient(api.state.base_url)
    other.login(f.parent(c)["email"])
    assert other.get(f"/bookings/{sooner['id']}/calendar.ics").status_code == 403
    other.close()


def test_the_schedule_has_upcoming_past_and_cancelled_apart_with_the_parents_name_and_email(api, web, parent, c):
    t = f.teacher(c)
    keep, gone = (f.book(parent, t, starts_at=f.slot(days=d)).json()["data"] for d in (3, 4))
    for b in (keep, gone):
        pay.pay(b["checkoutUrl"])
        parent["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    parent["client"].post(f"/api/Sessions/{gone['id']}/cancel")
    web.login(t["email"])
    page = web.get("/schedule")
    assert_clean(page)
    upcoming, rest = page.text.split('id="past-title"')
    _, cancelled = rest.split('id="cancelled-title"')
    assert f"/bookings/{keep['id']}/cancel" in upcoming and parent["email"] in upcoming
    assert parent["user"]["fullName"] in upcoming
    assert "badge-cancelled" in cancelled and "badge-cancelled" not in upcoming


def test_times_follow_the_zone_cookie_and_the_browsers_language(api, web, c):
    t = f.teacher(c, windows=[{"weekday": d, "start": "15:00", "end": "16:00"} for d in range(7)])
    path = f"/teachers/{t['user']['id']}?week=1"
    us = text_of(web.get(path, headers={"Accept-Language": "en-US,en;q=0.9"}))
    assert "3:00 PM" in us.replace("\u202f", " ") and "Coordinated Universal Time (UTC)" in us
    page = web.get("/time-zone?next=" + quote(path, safe=""))
    assert_clean(page)
    r = web.post("/time-zone", {"zone": "Asia/Tokyo", "next": path})
    assert r.status_code == 303 and r.headers["location"] == path
    gb = text_of(web.get(path, headers={"Accept-Language": "en-GB"}))
    assert re.search(r"\b00:00\b", gb) and "Japan" in gb and "Tokyo (JST)" in gb
    r = web.post("/time-zone", {"zone": "Mars/Olympus", "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"].startswith("/time-zone?next=%2F")


def test_the_profile_page_offers_stripes_currencies_and_refuses_a_rate_under_the_minimum(api, web, c):
    register(web, role="Teacher", name="Sei Shonagon", zone="Asia/Tokyo")
    page = web.get("/teacher/profile")
    offered = re.findall(r'<option value="([a-z]{3})"', page.text)
    assert "jpy" in offered and "gbp" in offered and "xyz" not in offered and len(offered) == 23
    form = {
        "full_name": "Sei Shonagon",
        "subjects": "Japanese",
        "currency": "jpy",
        "time_zone": "Asia/Tokyo",
        "bio": "",
    }
    low = web.post("/teacher/profile", form | {"hourly_rate": "98"})
    assert low.status_code == 422 and "at least JPY 99 an hour" in text_of(low)
    assert_clean(low)
    assert web.post("/teacher/profile", form | {"hourly_rate": "99"}).status_code == 303
    bogus = web.post("/teacher/profile", form | {"currency": "xyz", "hourly_rate": "5000"})
    assert bogus.status_code == 422 and "not a currency Tutorbook can charge in" in text_of(bogus)
