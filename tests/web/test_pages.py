"""The pages over HTTP: CSRF, the cancel and success pages, errors as messages, no "Unknown"."""

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from tests import factories as f
from tests.bookings.test_paging import HOUR, insert
from tests.support import payments as pay
from tests.web.helpers import WebClient, assert_clean, move_into_past, text_of
from tutorbook.bookings.lifecycle import Status


def cancel_url(booking: dict, *, session_id: str | None = None) -> str:
    sid = quote(session_id or booking["stripeSessionId"], safe="")
    return f"/payment/cancel?session_id={sid}&type=session-booking&booking_id={booking['id']}"


def my_bookings_api(p) -> list[dict]:
    return p["client"].get("/api/Sessions/my-bookings").json()["data"]["items"]


# -- CSRF and the login cookie ---------------------------------------------------------


def test_a_form_posted_without_its_csrf_token_is_refused(web, parent):
    r = web.post("/login", {"email": parent["email"], "password": f.PASSWORD}, csrf=False)
    assert r.status_code == 403 and "did not come from Tutorbook" in text_of(r)
    assert "tutorbook_token" not in r.headers.get("set-cookie", "")
    assert_clean(r)


def test_a_logged_in_form_with_a_wrong_or_foreign_token_changes_nothing(api, web, parent):
    web.login(parent["email"])
    stranger = WebClient(api.state.base_url)
    stranger.get("/login")
    for token in ("forged", stranger.token):
        r = web.http.post("/children", data={"full_name": "Mallory's pick", "csrf_token": token})
        assert r.status_code == 403
        assert_clean(r)
    assert [s["fullName"] for s in parent["client"].get("/api/Students").json()["data"]] == ["Kid 0"]
    stranger.close()


def test_the_login_cookie_is_httponly_and_samesite(web, parent):
    cookie = web.login(parent["email"]).headers["set-cookie"].lower()
    assert "tutorbook_token=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # the test app's public URL is http://127.0.0.1


def test_the_cookies_are_secure_when_the_public_url_is_https():
    from types import SimpleNamespace

    from tutorbook.web.core import cookie_options

    request = SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(public_url="https://tutorbook.example.com")))
    )
    assert cookie_options(request) == {
        "httponly": True,
        "samesite": "lax",
        "secure": True,
        "path": "/",
    }


def test_logging_out_needs_the_token_and_forgets_the_user(parent_web):
    assert parent_web.post("/logout", csrf=False).status_code == 403
    assert parent_web.get("/my-bookings").status_code == 200
    r = parent_web.post("/logout")
    assert r.status_code == 303
    r = parent_web.get("/my-bookings")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fmy-bookings"


# -- the cancel page -------------------------------------------------------------------


def test_the_cancel_page_cancels_the_booking_and_a_reload_is_harmless(api, parent_web, parent, booking):
    for _ in range(2):
        r = parent_web.get(cancel_url(booking))
        assert r.status_code == 200 and "Your booking was not made" in text_of(r)
        assert_clean(r)
    row = pay.booking_row(api.state.db, booking["id"])
    assert (row.status, row.cancellation_reason) == (3, "payment_cancelled")
    assert pay.history(api.state.db, booking["id"]) == [
        (None, 0, "booked"),
        (0, 3, "payment_cancelled"),
    ]
    assert my_bookings_api(parent) == []
    assert "no bookings yet" in text_of(parent_web.get("/my-bookings"))


def test_the_cancel_page_finds_the_booking_by_id_when_the_template_is_unreplaced(api, parent_web, booking):
    r = parent_web.get(cancel_url(booking, session_id="{CHECKOUT_SESSION_ID}"))
    assert r.status_code == 200 and "Your booking was not made" in text_of(r)
    assert pay.booking_row(api.state.db, booking["id"]).status == 3


def test_the_cancel_page_refuses_someone_elses_booking_with_a_message(api, c, web, booking):
    other = f.parent(c)
    web.login(other["email"])
    for sid in ("{CHECKOUT_SESSION_ID}", booking["stripeSessionId"]):
        r = web.get(cancel_url(booking, session_id=sid))
        assert r.status_code == 403 and "This booking is not yours" in text_of(r)
        assert_clean(r)
    assert pay.booking_row(api.state.db, booking["id"]).status == 0


def test_the_cancel_page_keeps_a_paid_booking_and_says_why(api, parent_web, booking):
    assert pay.pay(booking["checkoutUrl"]).status_code == 303
    r = parent_web.get(cancel_url(booking))
    assert r.status_code == 400 and "payment already processed" in text_of(r)
    assert pay.booking_row(api.state.db, booking["id"]).status == 1


def test_the_cancel_page_asks_to_log_in_first_and_comes_back(api, web, parent, booking):
    r = web.get(cancel_url(booking))
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fpayment%2Fcancel")
    login_page = web.get(r.headers["location"])
    next_value = login_page.text.split('name="next" value="')[1].split('"')[0]
    r = web.post(
        "/login",
        {
            "email": parent["email"],
            "password": f.PASSWORD,
            "next": next_value.replace("&amp;", "&"),
        },
    )
    assert r.headers["location"] == cancel_url(booking)
    assert "Your booking was not made" in text_of(web.get(r.headers["location"]))


def test_the_login_page_never_sends_anyone_to_another_site(web, parent):
    r = web.post("/login", {"email": parent["email"], "password": f.PASSWORD, "next": "//evil.example/x"})
    assert r.headers["location"] == "/my-bookings"


# -- the success page ------------------------------------------------------------------


def test_the_success_page_says_confirming_and_refreshes_until_paid_then_shows_the_booking(parent_web, booking):
    url = f"/payment/success?session_id={booking['stripeSessionId']}&type=session-booking"
    r = parent_web.get(url)
    assert r.status_code == 200 and "Confirming your payment" in text_of(r)
    assert '<meta http-equiv="refresh" content="2">' in r.text
    assert pay.pay(booking["checkoutUrl"]).status_code == 303
    r = parent_web.get(url)
    page = text_of(r)
    assert "Payment received" in page and "Confirmed" in page and "Join the meeting" in page
    assert "refresh" not in r.text
    assert_clean(r)


def test_the_success_page_explains_a_missing_or_foreign_reference(c, web, booking):
    web.login(f.parent(c)["email"])
    r = web.get("/payment/success?session_id={CHECKOUT_SESSION_ID}&type=session-booking")
    assert r.status_code == 400 and "no payment reference" in text_of(r)
    r = web.get(f"/payment/success?session_id={booking['stripeSessionId']}&type=session-booking")
    assert r.status_code == 403 and "not yours" in text_of(r)
    assert_clean(r)


# -- My Bookings, cancelling with the refund shown first, completing -------------------


def test_my_bookings_shows_each_status_with_its_own_badge_and_the_right_actions(api, c, parent_web, parent, teacher):
    pending = f.book(parent, teacher, starts_at=f.slot(days=3)).json()["data"]
    paid = f.book(parent, teacher, starts_at=f.slot(days=4)).json()["data"]
    gone = f.book(parent, teacher, starts_at=f.slot(days=5)).json()["data"]
    assert pay.pay(paid["checkoutUrl"]).status_code == 303
    parent["client"].post(f"/api/Sessions/confirm-payment/{paid['stripeSessionId']}")
    parent["client"].post(f"/api/Sessions/cancel-payment/{gone['stripeSessionId']}")
    r = parent_web.get("/my-bookings")
    assert_clean(r)
    assert r.text.count('class="badge badge-pending"') == 1 and r.text.count('class="badge badge-confirmed"') == 1
    assert "badge-cancelled" not in r.text  # never paid: not shown
    assert f'href="{pending["checkoutUrl"]}"' in r.text and "Resume payment" in r.text
    assert f"/bookings/{pending['id']}/cancel" in r.text and f"/bookings/{paid['id']}/cancel" in r.text
    assert "https://meet.jit.si/Tutorbook-" in r.text
    assert "USD 60.00" in text_of(r) and "UTC" in text_of(r)


def past_page(r) -> tuple[list[str], list[str], str | None, str | None]:
    """(upcoming ids, past ids, the Newer link, the Older link) of a My Bookings page."""
    assert r.status_code == 200, r.text
    assert_clean(r)
    upcoming, _, past = r.text.partition('id="past-title"')
    ids = re.compile(r'class="card booking"[^>]*data-id="([0-9a-f-]+)"')
    links = {rel: re.search(rf'<a href="([^"]+)" rel="{rel}">', past) for rel in ("prev", "next")}
    newer, older = (html.unescape(m.group(1)) if m else None for m in links.values())
    return ids.findall(upcoming), ids.findall(past), newer, older


def test_my_bookings_pages_the_past_by_older_and_newer_links_without_gaps_or_repeats(api, c, parent_web, parent):
    teachers = [f.teacher(c) for _ in range(3)]
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    past = {}
    for h in range(15):  # 45 past sessions, three at each start
        for t in teachers:
            past[insert(api, parent=parent, teacher=t, starts_at=base - h * HOUR, status=Status.COMPLETED)] = h
    soon = insert(api, parent=parent, teacher=teachers[0], starts_at=base + timedelta(days=4))
    expected = sorted(sorted(past, key=lambda i: uuid.UUID(i).bytes), key=lambda i: past[i])

    pages, link = [], ""
    while link is not None:  # Older, Older, ...
        upcoming, ids, newer, link = past_page(parent_web.get("/my-bookings" + link))
        assert upcoming == ([soon] if not pages else []) and (newer is None) == (not pages)
        assert "?page=" not in (link or "") and (link is None or link.startswith("?after="))
        pages.append(ids)
    assert [len(p) for p in pages] == [20, 20, 5] and sum(pages, []) == expected

    back, newer_link = [], unquote(newer.removeprefix("?before="))
    while newer:  # then Newer, Newer, back to the newest page, which shows Upcoming again
        upcoming, ids, newer, _ = past_page(parent_web.get("/my-bookings" + newer))
        back.append(ids)
    assert back == pages[-2::-1] and upcoming == [soon]

    for params in ({"after": "broken~link"}, {"before": "2026\x00"}, {"after": newer_link, "before": newer_link}):
        r = parent_web.get("/my-bookings", params=params)
        assert r.status_code in (400, 422) and "This page link is broken" in text_of(r), params
        assert_clean(r)


def test_a_confirmed_booking_without_its_link_yet_says_link_pending(api, parent_web, parent, booking):
    import sqlalchemy as sa

    from tutorbook.bookings.models import Booking

    pay.pay(booking["checkoutUrl"])
    parent["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}")
    with api.state.db.session_scope() as s:
        s.execute(sa.update(Booking).values(meeting_url=None))
    assert "Link pending" in text_of(parent_web.get("/my-bookings"))


def test_the_cancel_page_shows_the_full_refund_before_the_parent_confirms(api, parent_web, parent, booking):
    pay.pay(booking["checkoutUrl"])
    parent["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}")
    r = parent_web.get(f"/bookings/{booking['id']}/cancel")
    assert r.status_code == 200 and "full refund of USD 60.00" in text_of(r)
    assert pay.booking_row(api.state.db, booking["id"]).status == 1  # looking changes nothing
    r = parent_web.post(f"/bookings/{booking['id']}/cancel")
    assert r.status_code == 303 and r.headers["location"] == "/my-bookings"
    page = text_of(parent_web.get("/my-bookings"))
    assert "Booking cancelled. Refunded: USD 60.00." in page and "Cancelled" in page
    assert pay.booking_row(api.state.db, booking["id"]).refunded_amount == 6000


def test_the_cancel_page_says_no_refund_for_a_session_starting_within_a_day(c, parent_web, parent, teacher):
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    b = f.book(parent, teacher, starts_at=soon.isoformat().replace("+00:00", "Z")).json()["data"]
    pay.pay(b["checkoutUrl"])
    parent["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    page = text_of(parent_web.get(f"/bookings/{b['id']}/cancel"))
    assert "no refund" in page and "USD 0.00" in page


def test_the_teacher_marks_a_session_completed_only_once_it_has_started(api, web, parent, teacher, booking):
    pay.pay(booking["checkoutUrl"])
    parent["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}")
    web.login(teacher["email"])
    r = web.get("/schedule")
    assert "once it starts" in text_of(r) and "Mark completed" not in r.text
    r = web.post(f"/bookings/{booking['id']}/complete")
    assert r.status_code == 303
    assert "only once it has started" in text_of(web.get("/schedule"))
    move_into_past(api.state.db, booking["id"])
    assert "Mark completed" in web.get("/schedule").text
    web.post(f"/bookings/{booking['id']}/complete")
    r = web.get("/schedule")
    assert "Session marked completed." in text_of(r) and "badge-completed" in r.text
    assert my_bookings_api(parent)[0]["statusName"] == "Completed"


def test_a_pending_booking_is_cancelled_from_my_bookings_and_disappears(api, parent_web, booking):
    r = parent_web.get(f"/bookings/{booking['id']}/cancel")
    assert "Nothing has been paid" in text_of(r)
    r = parent_web.post(f"/bookings/{booking['id']}/cancel")
    assert r.status_code == 303
    page = text_of(parent_web.get("/my-bookings"))
    assert "Booking cancelled." in page and "no bookings yet" in page
    assert pay.booking_row(api.state.db, booking["id"]).cancellation_reason == "payment_cancelled"


def test_the_teacher_cancels_from_the_schedule_with_a_full_refund_shown_first(api, web, parent, teacher, booking):
    pay.pay(booking["checkoutUrl"])
    parent["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}")
    web.login(teacher["email"])
    assert f"/bookings/{booking['id']}/cancel" in web.get("/schedule").text
    assert "full refund of USD 60.00" in text_of(web.get(f"/bookings/{booking['id']}/cancel"))
    assert web.post(f"/bookings/{booking['id']}/cancel").headers["location"] == "/schedule"
    assert "Refunded: USD 60.00" in text_of(web.get("/schedule"))
    assert pay.booking_row(api.state.db, booking["id"]).cancellation_reason == "teacher_cancelled"


def test_a_parent_cannot_mark_completed_and_is_told_so(api, parent_web, booking):
    r = parent_web.post(f"/bookings/{booking['id']}/complete")
    assert r.status_code == 403 and "for teachers" in text_of(r)
    assert_clean(r)


# -- booking through the teacher page ---------------------------------------------------


def test_the_teacher_page_shows_free_times_in_the_viewers_zone_and_books_to_checkout(api, c, sandbox):
    from zoneinfo import ZoneInfo

    windows = [{"weekday": d, "start": "10:00", "end": "12:00"} for d in range(7)]
    t = f.teacher(c, rate=4500, windows=windows)
    p = f.register(c, role="Parent", time_zone="America/New_York")
    f.child(p["client"], full_name="Robin")
    web = WebClient(api.state.base_url)
    web.login(p["email"])
    r = web.get(f"/teachers/{t['user']['id']}?week=1")
    assert_clean(r)
    page = text_of(r)
    # The zone by its friendly name (#13); the starts are links, the booking form next to the chosen one.
    assert "Eastern Time – New York" in page and "USD 45.00 per hour" in page
    start = r.text.split('data-start="')[1].split('"')[0]
    first = datetime.fromisoformat(start.replace("Z", "+00:00"))
    assert first.hour == 10  # the teacher's 10:00 UTC, shown on New York's clock (en-GB: 24-hour):
    shown = f"{first.astimezone(ZoneInfo('America/New_York')):%H:%M}"
    assert re.search(rf'data-start="{start}"[^>]*>\s*{shown}</a>', r.text)
    student = p["client"].get("/api/Students").json()["data"][0]["id"]
    form = {
        "teacher_id": t["user"]["id"],
        "student_id": student,
        "subject": "Mathematics",
        "duration_minutes": "60",
        "starts_at": start,
        "week": "1",
    }
    r = web.post("/book", form)
    assert r.status_code == 303 and r.headers["location"].startswith(sandbox.base_url)
    r = web.post("/book", {**form, "student_id": "", "duration_minutes": "61"})
    assert r.status_code == 422 and "Choose a child." in text_of(r) and "Choose a length." in text_of(r)
    other = f.parent(c)
    web2 = WebClient(api.state.base_url)
    web2.login(other["email"])
    r = web2.post("/book", {**form, "student_id": other["students"][0]})
    assert r.status_code == 409 and "no longer free" in text_of(r)
    assert_clean(r)
    web.close(), web2.close()


# -- errors are messages, never stack traces; API errors stay JSON ----------------------


def test_errors_are_shown_as_messages_on_the_page(c, web, parent):
    r = web.post("/login", {"email": parent["email"], "password": "wrong-password"})
    assert r.status_code == 401 and "Wrong email or password" in text_of(r)
    r = web.post(
        "/register",
        {
            "email": parent["email"],
            "password": f.PASSWORD,
            "full_name": "Twin",
            "role": "Parent",
            "time_zone": "UTC",
        },
    )
    assert r.status_code == 409 and "already exists" in text_of(r)
    r = web.post(
        "/register",
        {
            "email": "not-an-email",
            "password": "short",
            "full_name": "X",
            "role": "Parent",
            "time_zone": "Mars/Base",
        },
    )
    assert r.status_code == 422 and "Email:" in text_of(r) and "Time zone:" in text_of(r)
    r = web.get("/teachers/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and "Teacher not found" in text_of(r)
    assert web.get("/teachers/not-an-id").status_code == 404
    r = web.get("/no-such-page")
    assert r.status_code == 404 and "does not exist" in text_of(r)
    for r in web.http.get("/no-such-page"), web.http.get("/teachers/not-an-id"):
        assert_clean(r)
    r = web.get("/schedule")
    assert r.status_code == 303  # log in first
    web.login(parent["email"])
    r = web.get("/schedule")
    assert r.status_code == 403 and "This page is for teachers." in text_of(r)


def test_the_login_page_shares_the_apis_throttle(web, parent):
    for _ in range(5):
        assert web.post("/login", {"email": parent["email"], "password": "nope"}).status_code == 401
    r = web.post("/login", {"email": parent["email"], "password": f.PASSWORD})
    assert r.status_code == 429 and "Too many attempts" in text_of(r) and r.headers["retry-after"]


def test_an_unexpected_failure_is_a_friendly_page(web, monkeypatch):
    from tutorbook.teachers import service as teachers

    def boom(*args, **kwargs):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(teachers, "list_teachers", boom)
    r = web.get("/")
    assert r.status_code == 500 and "Something went wrong on our side" in text_of(r)
    assert "exploded" not in r.text
    assert_clean(r)


def test_api_routes_keep_their_json_envelope(api, c):
    r = c.get("/api/Sessions/my-bookings", headers={"Accept": "text/html"})
    assert r.status_code == 401 and r.json()["success"] is False
    r = c.get("/api/Nope", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.json()["success"] is False


def test_the_pages_stay_out_of_the_openapi_document(c):
    from tutorbook.web import account_pages, booking_pages, payment_pages, reschedule_pages, teacher_pages

    modules = (account_pages, booking_pages, payment_pages, reschedule_pages, teacher_pages)
    pages = {route.path for m in modules for route in m.router.routes}
    assert {"/", "/my-bookings", "/payment/cancel", "/schedule"} <= pages
    assert not pages & set(c.get("/openapi.json").json()["paths"])


# -- "Unknown" never appears ------------------------------------------------------------


def test_no_page_shows_unknown_whatever_the_bookings_status(api, c, parent_web, parent, teacher):
    made = [f.book(parent, teacher, starts_at=f.slot(days=d)).json()["data"] for d in (2, 3, 4, 5)]
    for b in made[1:]:
        pay.pay(b["checkoutUrl"])
        parent["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    move_into_past(api.state.db, made[2]["id"])
    teacher["client"].post(f"/api/Sessions/{made[2]['id']}/complete")
    parent["client"].post(f"/api/Sessions/{made[3]['id']}/cancel")
    assert {b["statusName"] for b in my_bookings_api(parent)} == {
        "Pending",
        "Confirmed",
        "Completed",
        "Cancelled",
    }
    pages = [
        "/",
        f"/teachers/{teacher['user']['id']}",
        "/children",
        "/my-bookings",
        "/login",
        "/register",
        f"/payment/success?session_id={made[1]['stripeSessionId']}&type=session-booking",
        f"/payment/success?session_id={made[3]['stripeSessionId']}&type=session-booking",
        cancel_url(made[1]),
    ] + [f"/bookings/{b['id']}/cancel" for b in made]
    for path in pages:
        assert_clean(parent_web.get(path))
    teacher_web = WebClient(api.state.base_url)
    teacher_web.login(teacher["email"])
    r = teacher_web.get("/schedule")
    assert_clean(r)
    assert all(f"badge-{s}" in r.text for s in ("confirmed", "completed", "cancelled"))
    teacher_web.close()


def test_money_and_times_are_written_with_their_currency_and_zone():
    from tutorbook.web.formatting import money, when

    assert money(4500, "usd") == "USD 45.00" and money(4500, "jpy") == "JPY 4,500"
    assert money(1234567, "eur") == "EUR 12,345.67" and money(1500, "kwd") == "KWD 1.500"
    start = datetime(2026, 7, 1, 14, 0, tzinfo=UTC)
    # Written in the viewer's language since #13 (Babel): en-GB by default, 12-hour for en-US.
    assert when(start, start + timedelta(hours=1), "Europe/London") == "Wed, 1 Jul 2026, 15:00–16:00 BST"
    winter = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert when(winter, winter + timedelta(minutes=30), "Europe/London") == "Tue, 1 Dec 2026, 14:00–14:30 GMT"
    assert when(winter, winter + timedelta(hours=1), "America/New_York", "en_US") == (
        "Tue, Dec 1, 2026, 9:00\u202fAM–10:00\u202fAM EST"
    )


def test_the_register_page_refuses_a_weak_password_saying_why_and_keeps_the_form(web, c):
    r = web.post(
        "/register",
        {"full_name": "Wren", "email": "wren@example.com", "password": "password123", "role": "Parent"},
    )
    assert r.status_code == 422 and "too easy to guess" in text_of(r)
    assert "This is a very common password." in text_of(r) and 'value="wren@example.com"' in r.text
    assert "password123" not in r.text
    assert c.post("/api/Auth/login", json={"email": "wren@example.com", "password": "password123"}).status_code == 401
