"""Issue #29's "Done when" against the real sandbox (Stripe's API over HTTP, its hosted page, its
customers, saved cards and off-session PaymentIntents with Stripe's test cards), on both databases:
a ten-week card series; week 4's charge declined, the parent paying through the link; week 6's
needing authentication and not paid in time, so only week 6 is cancelled and freed; week 8 moved;
the rest cancelled from week 9, each week by its own terms; the calendar data expanding to exactly
the lessons held."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import icalendar
import recurring_ical_events
import sqlalchemy as sa

from tests import factories as f
from tests.jobs import helpers as h
from tests.support import payments as pay
from tests.support.servers import http_client, http_post
from tutorbook.bookings.models import Refund
from tutorbook.series.models import Series

DECLINES, NEEDS_AUTH, PAYS = "pm_card_chargeCustomerFail", "pm_card_authenticationRequired", "pm_card_visa"


def use_card(sandbox, customer: str, test_method: str) -> None:
    """The parent saves another card (Stripe's test PaymentMethod): the newest is charged next."""
    r = http_post(
        f"{sandbox.base_url}/v1/payment_methods/{test_method}/attach",
        data={"customer": customer},
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def due(start: str, api) -> datetime:
    at = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return at - timedelta(days=api.state.settings.series_charge_days_before) + timedelta(minutes=1)


def test_a_ten_week_card_series_against_the_sandbox(api, sandbox):
    c = http_client(base_url=api.state.base_url, timeout=30)
    t, p = f.teacher(c), f.parent(c)
    body = {
        "teacherId": t["user"]["id"],
        "studentId": p["students"][0],
        "subject": "Mathematics",
        "firstStartsAt": f.slot(days=5, hour=10),
        "durationMinutes": 60,
        "weeks": 10,
    }
    preview = p["client"].post("/api/Series/preview", json=body).json()["data"]
    assert [w["free"] for w in preview["weeks"]] == [True] * 10
    made = p["client"].post("/api/Series", json={**body, "payWith": "card"})
    assert made.status_code == 201, made.text
    series = made.json()["data"]
    weeks = {o["week"]: o for o in series["occurrences"]}
    assert pay.pay(series["checkoutUrl"]).status_code == 303  # week 1, the card saved
    first = p["client"].get(f"/api/Sessions/{weeks[1]['bookingId']}").json()["data"]
    confirmed = p["client"].post(f"/api/Sessions/confirm-payment/{first['stripeSessionId']}")
    assert confirmed.json()["data"]["status"] == 1
    with api.state.db.session_scope() as s:
        customer = s.scalar(sa.select(Series.stripe_customer_id).where(Series.id == uuid.UUID(series["id"])))
    assert customer

    def job(at: datetime) -> dict[str, int]:
        return h.run(api, "series", now=at).counts()

    def shown() -> dict[int, dict]:
        data = p["client"].get(f"/api/Series/{series['id']}").json()["data"]
        return {o["week"]: o for o in data["occurrences"]}

    assert job(due(weeks[3]["startsAt"], api)) == {"confirmed": 2}
    use_card(sandbox, customer, DECLINES)
    assert job(due(weeks[4]["startsAt"], api)) == {"declined": 1}
    assert shown()[4]["payment"] == "due"
    link = p["client"].post(f"/api/Series/lessons/{weeks[4]['bookingId']}/pay").json()["data"]
    assert pay.pay(link["checkoutUrl"]).status_code == 303  # paid with 4242 on the hosted page
    p["client"].post(f"/api/Sessions/confirm-payment/{link['stripeSessionId']}")
    assert shown()[4]["status"] == 1

    use_card(sandbox, customer, PAYS)
    assert job(due(weeks[5]["startsAt"], api)) == {"confirmed": 1}
    use_card(sandbox, customer, NEEDS_AUTH)
    assert job(due(weeks[6]["startsAt"], api)) == {"requires_action": 1}
    use_card(sandbox, customer, PAYS)
    six_start = datetime.fromisoformat(weeks[6]["startsAt"].replace("Z", "+00:00"))
    assert job(six_start - timedelta(hours=24) + timedelta(minutes=1)) == {"cancelled_unpaid": 1}
    now = shown()
    assert [now[w]["status"] for w in range(1, 11)] == [1] * 5 + [3] + [0] * 4
    other = f.book(f.parent(c), t, starts_at=weeks[6]["startsAt"])  # the freed hour books
    assert other.status_code == 201, other.text

    assert job(due(weeks[8]["startsAt"], api)) == {"confirmed": 2}
    moved_to = f.slot(days=5 + 7 * 7 + 1, hour=12)
    moved = p["client"].post(f"/api/Sessions/{weeks[8]['bookingId']}/reschedule", json={"startsAt": moved_to})
    assert moved.status_code == 200, moved.text
    assert job(due(weeks[9]["startsAt"], api)) == {"confirmed": 1}
    day = weeks[9]["startsAt"][:10]
    cancelled = p["client"].post(f"/api/Series/{series['id']}/cancel", json={"from": day})
    assert cancelled.status_code == 200, cancelled.text
    final = {o["week"]: o for o in cancelled.json()["data"]["occurrences"]}
    assert [final[w]["status"] for w in range(1, 11)] == [1] * 5 + [3] + [1, 1] + [3, 3]
    assert final[8]["startsAt"] == moved_to
    with api.state.db.session_scope() as s:
        refunded = {
            str(r.session_id): (r.amount, r.status)
            for r in s.scalars(
                sa.select(Refund).where(Refund.session_id.in_([uuid.UUID(o["bookingId"]) for o in final.values()]))
            )
        }
    assert refunded == {weeks[9]["bookingId"]: (series["priceAmount"], "succeeded")}  # week 10 was never charged

    ics = p["client"].get(f"/api/Series/{series['id']}/calendar.ics")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(ics.content)
    start = datetime.fromisoformat(weeks[1]["startsAt"].replace("Z", "+00:00")) - timedelta(days=1)
    expanded = recurring_ical_events.of(cal).between(start, start + timedelta(weeks=12))
    held = sorted(
        datetime.fromisoformat(o["startsAt"].replace("Z", "+00:00")) for o in final.values() if o["status"] != 3
    )
    assert sorted(e["DTSTART"].dt.astimezone(UTC) for e in expanded) == held
