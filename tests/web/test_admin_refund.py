"""An operator refunds an amount without cancelling: the booking stays Confirmed, the money goes
through the refund outbox to Stripe in one transaction, a resubmitted form refunds once, and no
more than what is left can be given back."""

from __future__ import annotations

import re

from tests.jobs.helpers import confirmed
from tests.support import payments as pay
from tests.web.helpers import assert_clean, text_of
from tests.web.test_admin_console import actions, history


def key_of(page) -> str:
    return re.search(r'name="key" value="([^"]+)"', page.text).group(1)


def test_an_admin_refunds_part_of_a_paid_booking_and_it_stays_confirmed(api, c, admin, admin_web):
    b = confirmed(c)["b"]
    page = admin_web.get(f"/admin/bookings/{b['id']}")
    assert "Refund without cancelling" in text_of(page) and "Left to refund: USD 60.00" in text_of(page)
    before = len(history(api, b["id"]))
    form = {"amount": "12.50", "reason": "Late start", "key": key_of(page)}
    r = admin_web.post(f"/admin/bookings/{b['id']}/refund", form)
    assert r.status_code == 303
    row = pay.booking_row(api.state.db, b["id"])
    assert row.status == 1 and row.refunded_amount == 1250
    [refund] = pay.refunds(api.state.db, b["id"])
    assert (refund.amount, refund.status, refund.reason) == (1250, "succeeded", "admin_refund")
    assert len(history(api, b["id"])) == before  # no status change
    [action] = actions(api, b["id"])
    assert action.action == "refund" and action.note == "Late start" and action.actor == f"user:{admin['id']}"
    page = admin_web.get(f"/admin/bookings/{b['id']}")
    text = text_of(page)
    assert "Refund of USD 12.50 asked of Stripe." in text and "Left to refund: USD 47.50" in text
    assert_clean(page)

    # The same form again (a double click, the browser's resubmit): nothing more.
    r = admin_web.post(f"/admin/bookings/{b['id']}/refund", form)
    assert "nothing more was refunded" in text_of(admin_web.get(r.headers["location"]))
    assert len(pay.refunds(api.state.db, b["id"])) == 1


def test_no_more_than_what_is_left_and_a_reason_and_an_amount_are_needed(api, c, admin_web):
    b = confirmed(c)["b"]
    for data, words in [
        ({"amount": "60.01", "reason": "too much"}, "At most USD 60.00 is left to refund."),
        ({"amount": "0", "reason": "zero"}, "Give the amount to refund"),
        ({"amount": "abc", "reason": "text"}, "Give the amount to refund"),
        ({"amount": "1.005", "reason": "sub-cent"}, "Give the amount to refund"),
        ({"amount": "5", "reason": "  "}, "A reason is needed"),
    ]:
        page = admin_web.get(f"/admin/bookings/{b['id']}")
        r = admin_web.post(f"/admin/bookings/{b['id']}/refund", {**data, "key": key_of(page)})
        assert r.status_code == 303
        assert words in text_of(admin_web.get(r.headers["location"])), data
    assert pay.refunds(api.state.db, b["id"]) == []
    page = admin_web.get(f"/admin/bookings/{b['id']}")
    assert admin_web.post(f"/admin/bookings/{b['id']}/refund", {"amount": "60", "reason": "all", "key": key_of(page)})
    row = pay.booking_row(api.state.db, b["id"])
    assert row.status == 1 and row.refunded_amount == 6000
    page = admin_web.get(f"/admin/bookings/{b['id']}")
    assert "Refund without cancelling" not in text_of(page)  # nothing left
    r = admin_web.post(f"/admin/bookings/{b['id']}/refund", {"amount": "1", "reason": "more", "key": "another-key"})
    assert "At most USD 0.00 is left to refund." in text_of(admin_web.get(r.headers["location"]))


def test_refunding_is_for_admins_only_and_needs_the_csrf_token(api, c, admin_web):
    x = confirmed(c)
    b = x["b"]
    from tests.web.helpers import WebClient

    parent = WebClient(api.state.base_url)
    parent.login(x["p"]["email"])
    r = parent.post(f"/admin/bookings/{b['id']}/refund", {"amount": "5", "reason": "me", "key": "k"})
    assert r.status_code == 403
    parent.close()
    r = admin_web.post(f"/admin/bookings/{b['id']}/refund", {"amount": "5", "reason": "x", "key": "k"}, csrf=False)
    assert r.status_code == 403
    assert pay.refunds(api.state.db, b["id"]) == []


def test_the_api_refunds_an_amount_once_per_key_and_no_more_than_is_left(api, c):
    from tests.jobs.helpers import admin_client

    b = confirmed(c)["b"]
    url = f"/api/Admin/bookings/{b['id']}/refund"
    with admin_client(api, c) as admin:
        r = admin.post(url, json={"amount": 1000, "reason": "late start", "idempotencyKey": "k1"})
        assert r.status_code == 200 and r.json()["data"]["status"] == 1, r.text
        again = admin.post(url, json={"amount": 1000, "reason": "late start", "idempotencyKey": "k1"})
        assert again.status_code == 200 and again.json()["message"] == "This refund was asked for already"
        too_much = admin.post(url, json={"amount": 5001, "reason": "more", "idempotencyKey": "k2"})
        assert too_much.status_code == 422 and too_much.json()["data"][0]["field"] == "amount"
        assert admin.post(url, json={"amount": -1, "reason": "x", "idempotencyKey": "k3"}).status_code == 422
        missing = f"/api/Admin/bookings/{'0' * 8}-0000-0000-0000-{'0' * 12}/refund"
        assert admin.post(missing, json={"amount": 1, "reason": "x", "idempotencyKey": "k4"}).status_code == 404
    assert [r.amount for r in pay.refunds(api.state.db, b["id"])] == [1000]
    assert pay.booking_row(api.state.db, b["id"]).refunded_amount == 1000
    parent = confirmed(c)["p"]
    r = parent["client"].post(url, json={"amount": 1, "reason": "me", "idempotencyKey": "k5"})
    assert r.status_code == 403
