"""The pages of packages and credits, on both databases: a teacher adds a package on
/teacher/packages, a parent buys it from the teacher's page through the hosted checkout (the
success page with type=package-purchase adds the credits), books with "Use a credit (N left)",
sees /credits; the operator's console shows the family's wallet and grants credit with a reason."""

from __future__ import annotations

import re

from tests import factories as f
from tests.credits import helpers as h
from tests.support import payments as pay
from tests.web.helpers import WebClient, assert_clean, text_of


def _web(api, who: dict) -> WebClient:
    client = WebClient(api.state.base_url)
    client.login(who["email"])
    return client


def test_buy_on_the_teacher_page_pay_and_book_with_a_credit(api, c, sandbox):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    tw, pw = _web(api, t), _web(api, p)
    r = tw.post("/teacher/packages", {"lessons": "2", "duration_minutes": "60", "price": "100.00", "valid_days": "90"})
    assert r.status_code == 303, r.text
    page = tw.get("/teacher/packages")
    assert_clean(page)
    assert "USD 100.00" in text_of(page) and "USD 50.00" in text_of(page)
    bad = tw.post("/teacher/packages", {"lessons": "2", "duration_minutes": "60", "price": "abc", "valid_days": "90"})
    assert bad.status_code == 422 and "price" in text_of(bad).lower()

    teacher_page = pw.get(f"/teachers/{t['user']['id']}")
    assert_clean(teacher_page)
    [package_id] = re.findall(r'action="/packages/([0-9a-f-]+)/buy"', teacher_page.text)
    r = pw.post(f"/packages/{package_id}/buy")
    assert r.status_code == 303 and r.headers["location"].startswith(sandbox.base_url)
    paid = pay.pay(r.headers["location"])
    assert paid.status_code == 303
    success = paid.headers["location"]
    assert "type=package-purchase" in success
    done = pw.get(success.replace(api.state.base_url, ""))
    assert done.status_code == 200 and "credits are ready" in text_of(done)
    assert h.credits(p)["total"] == 2

    start = f.slot(days=3)
    chosen = pw.get(f"/teachers/{t['user']['id']}", params={"start": start})
    assert "Use a credit (2 left)" in text_of(chosen)
    r = pw.post(
        "/book",
        {
            "teacher_id": t["user"]["id"],
            "student_id": p["students"][0],
            "subject": "Mathematics",
            "starts_at": start,
            "duration_minutes": "60",
            "pay_with": "credit",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/my-bookings"
    assert h.credits(p)["total"] == 1
    credits_page = pw.get("/credits")
    assert_clean(credits_page)
    text = text_of(credits_page)
    assert "1 lesson left" in text and "Draw" in text and "Purchase" in text
    tw.close()
    pw.close()


def test_the_cancel_page_of_a_package_checkout_buys_nothing(api, c, sandbox):
    t, p = f.teacher(c), f.parent(c)
    pkg = h.package(t)
    pw = _web(api, p)
    r = pw.post(f"/packages/{pkg['id']}/buy")
    back = pay.back_link(r.headers["location"])
    page = pw.get(back.replace(api.state.base_url, ""))
    assert page.status_code == 200 and "Nothing was charged" in text_of(page)
    assert h.credits(p)["total"] == 0
    pw.close()


def test_the_console_shows_a_family_wallet_and_grants_credit_with_a_reason(api, c, admin, admin_web):
    t, p = f.teacher(c), f.parent(c)
    url = f"/admin/families/{p['user']['id']}/credits"
    page = admin_web.get(url)
    assert_clean(page)
    r = admin_web.post(
        url,
        {
            "direction": "grant",
            "teacher_id": t["user"]["id"],
            "duration_minutes": "60",
            "lessons": "3",
            "reason": "apology",
        },
    )
    assert r.status_code == 303
    assert h.credits(p)["total"] == 3
    r = admin_web.post(
        url,
        {
            "direction": "remove",
            "teacher_id": t["user"]["id"],
            "duration_minutes": "60",
            "lessons": "1",
            "reason": "typo",
        },
    )
    assert h.credits(p)["total"] == 2
    text = text_of(admin_web.get(url))
    assert "apology" in text and "typo" in text and f"user:{admin['id']}" in text
    pw = _web(api, p)
    assert pw.get(url).status_code in (403, 404)
    pw.close()


def test_an_operator_cancelling_a_credit_paid_lesson_returns_the_credit_or_not_as_chosen(api, c, admin_web):
    t, p = f.teacher(c), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=2, price=10000))
    full = h.book_with_credit(p, t, days=3).json()["data"]
    none = h.book_with_credit(p, t, days=4).json()["data"]
    assert h.credits(p)["total"] == 0
    r = admin_web.post(f"/admin/bookings/{full['id']}/cancel", {"refund": "full", "reason": "teacher ill"})
    assert r.status_code == 303
    assert h.credits(p)["total"] == 1
    r = admin_web.post(f"/admin/bookings/{none['id']}/cancel", {"refund": "none", "reason": "no-show rule"})
    assert r.status_code == 303
    assert h.credits(p)["total"] == 1
    page = text_of(admin_web.get(f"/admin/bookings/{none['id']}"))
    assert "credit used up" in page
