"""The seed's scenarios end to end: book -> checkout -> back (cancel) or pay (confirm), through
the real stripe SDK against the sandbox over HTTP."""

from urllib.parse import parse_qs, urlparse

import pytest

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import wait_for


@pytest.fixture
def booked(c):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    r = f.book(p, t)
    assert r.status_code == 201, r.text
    return {"t": t, "p": p, "b": r.json()["data"]}


def my_bookings(p) -> list[dict]:
    return p["client"].get("/api/Sessions/my-bookings").json()["data"]["items"]


def test_booking_creates_a_pending_session_with_a_checkout(api, booked, sandbox):
    b = booked["b"]
    assert b["status"] == 0 and b["statusName"] == "Pending"
    assert b["priceAmount"] == 6000 and b["currency"] == "usd"
    assert b["stripeSessionId"].startswith("cs_test_") and b["checkoutUrl"].startswith(sandbox.base_url)
    cs = pay.sandbox_session(sandbox, b["stripeSessionId"])
    base = api.state.settings.public_url
    assert cs["success_url"] == f"{base}/payment/success?session_id={{CHECKOUT_SESSION_ID}}&type=session-booking"
    assert cs["cancel_url"] == (
        f"{base}/payment/cancel?session_id={{CHECKOUT_SESSION_ID}}&type=session-booking&booking_id={b['id']}"
    )
    assert cs["client_reference_id"] == b["id"]
    assert cs["metadata"] == {"booking_id": b["id"], "type": "session-booking"}
    assert cs["amount_total"] == 6000 and cs["status"] == "open"
    assert pay.history(api.state.db, b["id"]) == [(None, 0, "booked")]


def test_seed_1_back_on_checkout_cancels_and_hides_the_booking(api, booked, sandbox):
    b, p = booked["b"], booked["p"]
    cancel_url = pay.back_link(b["checkoutUrl"])
    assert "{CHECKOUT_SESSION_ID}" in cancel_url  # the sandbox leaves the template, as Stripe documents
    query = parse_qs(urlparse(cancel_url).query)
    r = p["client"].post(
        f"/api/Sessions/cancel-payment/{query['session_id'][0]}", params={"bookingId": query["booking_id"][0]}
    )
    assert r.status_code == 200 and r.json() == {
        "success": True,
        "message": "Session booking cancelled successfully",
        "data": True,
    }
    assert my_bookings(p) == []
    row = pay.booking_row(api.state.db, b["id"])
    assert (row.status, row.cancellation_reason) == (3, "payment_cancelled")
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "expired"
    page = pay.pay(b["checkoutUrl"])  # the abandoned page can no longer take money
    assert page.status_code != 303
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["payment_status"] == "unpaid"
    assert pay.history(api.state.db, b["id"]) == [(None, 0, "booked"), (0, 3, "payment_cancelled")]


def test_cancel_payment_by_stripe_session_id_and_again_is_a_no_op(api, booked):
    b, p = booked["b"], booked["p"]
    for _ in range(2):
        r = p["client"].post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}")
        assert r.status_code == 200 and r.json()["data"] is True
    assert len(pay.history(api.state.db, b["id"])) == 2


def test_cancel_payment_refuses_strangers_unknown_ids_and_paid_bookings(api, c, booked):
    b, p = booked["b"], booked["p"]
    other = f.parent(c)
    assert other["client"].post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}").status_code == 403
    assert p["client"].post("/api/Sessions/cancel-payment/cs_test_nope").status_code == 404
    assert c.post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}").status_code == 401
    assert booked["t"]["client"].post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}").status_code == 403
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    r = p["client"].post(f"/api/Sessions/cancel-payment/{b['stripeSessionId']}")
    assert r.status_code == 400 and r.json()["success"] is False
    assert pay.booking_row(api.state.db, b["id"]).status == 1


def test_seed_2_and_3_paying_confirms_with_a_meeting_link(api, booked, sandbox):
    b, p = booked["b"], booked["p"]
    r = pay.pay(b["checkoutUrl"])
    assert r.status_code == 303
    location = r.headers["location"]
    assert f"session_id={b['stripeSessionId']}" in location and "type=session-booking" in location
    r = p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["status"] == 1 and data["statusName"] == "Confirmed" and data["paidAt"]
    assert data["stripePaymentIntentId"].startswith("pi_")
    assert data["meetingUrl"].startswith("https://meet.jit.si/Tutorbook-")
    [item] = my_bookings(p)
    assert item["statusName"] == "Confirmed" and item["meetingUrl"] == data["meetingUrl"]
    assert pay.history(api.state.db, b["id"]) == [(None, 0, "booked"), (0, 1, "paid")]


def test_the_webhook_alone_confirms_a_paid_booking(api, booked):
    b = booked["b"]
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    row = wait_for(
        lambda: (r := pay.booking_row(api.state.db, b["id"])).status == 1 and r.meeting_url and r,
        message="webhook confirmation",
    )
    assert row.paid_at is not None


def test_a_declined_card_leaves_the_checkout_open_and_the_booking_pending(api, booked, sandbox):
    b = booked["b"]
    r = pay.pay(b["checkoutUrl"], card=pay.DECLINED_CARD)
    assert r.status_code != 303 and "declined" in r.text.lower()
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "open"
    r = booked["p"]["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    assert r.status_code == 200 and r.json()["data"]["status"] == 0


def test_the_same_parent_retrying_the_same_slot_gets_the_same_checkout(booked):
    b, p, t = booked["b"], booked["p"], booked["t"]
    again = f.book(p, t, starts_at=b["startsAt"])
    assert again.status_code == 201
    assert again.json()["data"]["id"] == b["id"] and again.json()["data"]["checkoutUrl"] == b["checkoutUrl"]


def test_an_overlapping_booking_of_the_same_teacher_is_409(c, booked):
    other = f.parent(c)
    start = booked["b"]["startsAt"]
    r = f.book(other, booked["t"], starts_at=start.replace(":00:00Z", ":30:00Z"))
    assert r.status_code == 409 and r.json()["success"] is False


def test_my_bookings_shows_only_my_own(c, booked):
    other = f.parent(c)
    assert my_bookings(other) == []
    assert [x["id"] for x in my_bookings(booked["p"])] == [booked["b"]["id"]]
    assert other["client"].get(f"/api/Sessions/{booked['b']['id']}").status_code == 403
    assert booked["t"]["client"].get(f"/api/Sessions/{booked['b']['id']}").status_code == 200
