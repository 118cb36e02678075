"""The teacher's payouts and earnings pages: connect on the sandbox's hosted onboarding, see
the state Stripe reports, see each paid session's split."""

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import http_post, wait_for
from tests.web.helpers import assert_clean, text_of


def test_a_teacher_connects_payouts_from_the_page(api, web, teacher):
    web.login(teacher["email"])
    page = web.get("/teacher/payouts")
    assert_clean(page)
    assert "not connected payouts yet" in text_of(page)
    to_stripe = web.post("/teacher/payouts/onboard")
    assert to_stripe.status_code == 303 and "/setup/s/acct_" in to_stripe.headers["location"]
    back = http_post(to_stripe.headers["location"], data={"choice": "later"}, follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"].endswith("/teacher/payouts?returned=1")
    page = web.get("/teacher/payouts?returned=1")
    assert "not ready yet" in text_of(page) and "external_account" in page.text
    again = web.post("/teacher/payouts/onboard")
    http_post(again.headers["location"], data={"choice": "complete"}, follow_redirects=False)
    page = web.get("/teacher/payouts?returned=1")
    assert "Payouts are on" in text_of(page)


def test_the_onboarding_form_needs_its_csrf_token(api, web, teacher):
    web.login(teacher["email"])
    assert web.post("/teacher/payouts/onboard", csrf=False).status_code in (400, 403)


def test_the_earnings_page_shows_each_session_and_the_month(api, c, web, teacher):
    p = f.parent(c)
    web.login(teacher["email"])
    to_stripe = web.post("/teacher/payouts/onboard")
    http_post(to_stripe.headers["location"], data={"choice": "complete"}, follow_redirects=False)
    assert "Payouts are on" in text_of(web.get("/teacher/payouts?returned=1"))
    b = f.book(p, teacher).json()["data"]
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    wait_for(lambda: pay.booking_row(api.state.db, b["id"]).stripe_transfer_id, message="split")
    page = web.get("/teacher/earnings")
    assert_clean(page)
    text = text_of(page)
    # 60.00 paid, 15 % fee 9.00, the teacher keeps 51.00.
    assert "Per month" in text and "9.00" in text and "51.00" in text and "60.00" in text


def test_the_earnings_page_refuses_days_outside_the_years_it_can_count(api, web, teacher):
    web.login(teacher["email"])
    # The last days of year 9999: counting to the day after used to overflow (a 500).
    page = web.get("/teacher/earnings?from=9999-12-30&to=9999-12-31")
    assert page.status_code == 422 and "text/html" in page.headers["content-type"]
    assert web.get("/teacher/earnings?from=2026-01-01&to=2026-02-01").status_code == 200
