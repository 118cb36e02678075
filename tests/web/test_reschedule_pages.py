"""Changing the time of a paid session on the pages (no JavaScript: plain forms with CSRF), the
reason when "Change time" is missing, the terms stated on booking and on My Bookings, and the
teacher's terms form."""

from __future__ import annotations

import re

from tests import factories as f
from tests.bookings.test_reschedule import confirmed, set_policy
from tests.support import payments as pay
from tests.web.helpers import WebClient, assert_clean, text_of


def logged_in(api, who) -> WebClient:
    web = WebClient(api.state.base_url)
    web.login(who["email"])
    return web


def starts(r) -> list[str]:
    return re.findall(r'name="starts_at" value="([^"]+)"', r.text)


def test_a_parent_changes_the_time_of_a_paid_session_from_my_bookings(api, c):
    t, p, b = confirmed(c, days=3)
    web = logged_in(api, p)
    r = web.get("/my-bookings")
    assert_clean(r)
    assert f"/bookings/{b['id']}/reschedule" in r.text
    assert "Free cancellation up to 24 hours before the start" in text_of(r)  # the terms, in one sentence
    r = web.get(f"/bookings/{b['id']}/reschedule", params={"week": 1})
    assert_clean(r)
    offered = starts(r)
    assert offered and b["startsAt"] not in offered
    target = f.slot(days=9, hour=11)
    assert target in offered
    r = web.post(f"/bookings/{b['id']}/reschedule", {"starts_at": target, "week": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith("/my-bookings")
    row = pay.booking_row(api.state.db, b["id"])
    assert row.starts_at.isoformat().replace("+00:00", "Z") == target and row.status == 1
    r = web.get(r.headers["location"])
    assert "Session moved to" in text_of(r)
    web.close()


def test_a_taken_or_missing_time_is_explained_on_the_page(api, c):
    t, p, b = confirmed(c, days=3)
    web = logged_in(api, p)
    web.get(f"/bookings/{b['id']}/reschedule")
    r = web.post(f"/bookings/{b['id']}/reschedule", {"week": "0"})
    assert r.status_code == 422 and "Choose a new time." in text_of(r)
    taken = f.slot(days=4, hour=15)
    assert f.book(f.parent(c), t, starts_at=taken).status_code == 201
    r = web.post(f"/bookings/{b['id']}/reschedule", {"starts_at": taken, "week": "0"})
    assert r.status_code == 409 and "no longer free" in text_of(r)
    assert_clean(r)
    web.close()


def test_the_button_is_missing_with_the_reason_after_the_deadline_or_the_limit(api, c):
    t = f.teacher(c)
    set_policy(t, rescheduleDeadlineHours=100)
    t, p, b = confirmed(c, t, days=2)
    web = logged_in(api, p)
    r = web.get("/my-bookings")
    assert f"/bookings/{b['id']}/reschedule" not in r.text
    assert "until 100 hours before the start. Ask the teacher" in text_of(r)
    r = web.get(f"/bookings/{b['id']}/reschedule")
    assert r.status_code == 200 and 'id="why-not"' in r.text and starts(r) == []
    r = web.post(f"/bookings/{b['id']}/reschedule", {"starts_at": f.slot(days=6), "week": "0"})
    assert r.status_code == 409 and "100 hours" in text_of(r)
    # The teacher still can, from the schedule.
    tweb = logged_in(api, t)
    r = tweb.get("/schedule")
    assert f"/bookings/{b['id']}/reschedule" in r.text
    tweb.get(f"/bookings/{b['id']}/reschedule")
    r = tweb.post(f"/bookings/{b['id']}/reschedule", {"starts_at": f.slot(days=6), "week": "0"})
    assert r.status_code == 303 and r.headers["location"].startswith("/schedule")

    set_policy(t, maxReschedules=0)
    t, p2, b2 = confirmed(c, t, days=8)
    web2 = logged_in(api, p2)
    r = web2.get("/my-bookings")
    assert f"/bookings/{b2['id']}/reschedule" not in r.text
    assert "do not allow changing the time" in text_of(r)
    for w in (web, tweb, web2):
        w.close()


def test_the_booking_form_states_the_teachers_terms(api, c):
    t = f.teacher(c)
    set_policy(t, fullRefundHours=48, lateRefundPercent=50, rescheduleDeadlineHours=12, maxReschedules=1)
    p = f.parent(c)
    web = logged_in(api, p)
    r = web.get(f"/teachers/{t['user']['id']}")
    assert (
        "Free cancellation up to 48 hours before the start, a 50% refund after that; "
        "change the time once, until 12 hours before the start." in text_of(r)
    )
    web.close()


def test_a_teacher_sets_their_terms_on_the_page(api, c):
    t = f.teacher(c)
    web = logged_in(api, t)
    r = web.get("/teacher/policy")
    assert_clean(r)
    assert "platform's terms" in text_of(r)
    form = {
        "full_refund_hours": "72",
        "late_refund_percent": "20",
        "reschedule_deadline_hours": "6",
        "max_reschedules": "4",
    }
    r = web.post("/teacher/policy", {**form, "late_refund_percent": "120"})
    assert r.status_code == 422 and "late refund percentage" in text_of(r)
    r = web.post("/teacher/policy", form)
    assert r.status_code == 303
    data = t["client"].get("/api/Teachers/me/policy").json()["data"]
    assert (data["fullRefundHours"], data["lateRefundPercent"], data["rescheduleDeadlineHours"]) == (72, 20, 6)
    assert data["maxReschedules"] == 4 and data["isDefault"] is False
    r = web.post("/teacher/policy", form, csrf=False)
    assert r.status_code == 403
    assert logged_in(api, f.parent(c)).get("/teacher/policy").status_code == 403
    web.close()
