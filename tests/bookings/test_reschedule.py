"""Rescheduling a paid session (issue #15) through the HTTP app against the sandbox, on SQLite and
PostgreSQL: the same booking, price and payment at another time; the parent within the teacher's
terms, the teacher any time before the start; races with exactly one winner; the old time free
at once; refunds from the terms stored when the booking was paid."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import sqlalchemy as sa

from tests import factories as f
from tests.meetings.test_google_meet import EVENTS_URI, api_calls, meet_event, oauth_provider, ok
from tests.support import payments as pay
from tests.support.servers import wait_for
from tutorbook import jobs
from tutorbook.bookings import link_records
from tutorbook.bookings import repository as repo
from tutorbook.bookings.models import Booking, StatusHistory
from tutorbook.clock import utc_now
from tutorbook.flows import booking as flows
from tutorbook.identity import AuthUser, Role
from tutorbook.meetings.google import stable_id
from tutorbook.notifications.models import Notification

POLICY = {"fullRefundHours": 24, "lateRefundPercent": 0, "rescheduleDeadlineHours": 24, "maxReschedules": 2}


def set_policy(t, **changes):
    r = t["client"].put("/api/Teachers/me/policy", json={**POLICY, **changes})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def confirmed(c, t=None, *, days=3, hour=10, duration=60, p=None):
    """A paid, Confirmed booking: (teacher, parent, booking as the API shows it)."""
    t, p = t or f.teacher(c), p or f.parent(c)
    r = f.book(p, t, starts_at=f.slot(days=days, hour=hour), duration=duration)
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    r = p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}")
    assert r.json()["data"]["status"] == 1, r.text
    return t, p, r.json()["data"]


def move(client, booking_id, starts_at):
    return client.post(f"/api/Sessions/{booking_id}/reschedule", json={"startsAt": starts_at})


def moves(db, booking_id):
    with db.session_scope() as s:
        rows = s.scalars(
            sa.select(StatusHistory)
            .where(StatusHistory.session_id == uuid.UUID(booking_id), StatusHistory.reason == "rescheduled")
            .order_by(StatusHistory.id)
        )
        return [(h.from_status, h.to_status, h.moved_from, h.moved_to, h.actor) for h in rows]


def test_a_parent_moves_a_paid_session_keeping_its_id_price_payment_and_status(api, c):
    t, p, b = confirmed(c)
    new = f.slot(days=4, hour=15)
    r = move(p["client"], b["id"], new)
    assert r.status_code == 200, r.text
    moved = r.json()["data"]
    assert moved["startsAt"] == new and moved["endsAt"] == f.slot(days=4, hour=16)
    for key in ("id", "priceAmount", "currency", "status", "stripeSessionId", "stripePaymentIntentId", "paidAt"):
        assert moved[key] == b[key], key
    assert moved["rescheduleCount"] == 1 and moved["meetingUrl"] == b["meetingUrl"]  # a Jitsi room stays
    row = pay.booking_row(api.state.db, b["id"])
    assert row.starts_at.isoformat().replace("+00:00", "Z") == new and row.refunded_amount == 0
    # The history: one move, Confirmed to Confirmed, from the old start to the new, by the parent.
    [(frm, to, moved_from, moved_to, actor)] = moves(api.state.db, b["id"])
    assert (frm, to) == (1, 1) and actor.startswith("user:") and p["user"]["id"] in actor
    assert moved_from.isoformat().replace("+00:00", "Z") == b["startsAt"]
    assert moved_to.isoformat().replace("+00:00", "Z") == new
    history = p["client"].get(f"/api/Sessions/{b['id']}/history").json()["data"]
    assert history[-1]["reason"] == "rescheduled" and history[-1]["movedTo"] == new
    # No second checkout, no refund, no new payment at the sandbox.
    assert pay.refunds(api.state.db, b["id"]) == []
    # Both sides are told, in the move's transaction, with the next version (the invite's SEQUENCE).
    with api.state.db.session_scope() as s:
        notes = s.scalars(sa.select(Notification).where(Notification.booking_id == uuid.UUID(b["id"]))).all()
        kinds = {n.kind: n.version for n in notes}
    assert kinds["rescheduled.parent"] == kinds["rescheduled.teacher"] > kinds["confirmed.parent"]
    # The old time is bookable right after the move commits.
    other = f.parent(c)
    assert f.book(other, t, starts_at=b["startsAt"]).status_code == 201


def test_moving_to_a_taken_time_or_outside_the_teachers_hours_is_refused_and_changes_nothing(api, c):
    weekdays = [{"weekday": d, "start": "08:00", "end": "18:00"} for d in range(7)]
    t = f.teacher(c, windows=weekdays)
    t, p, b = confirmed(c, t)
    assert f.book(f.parent(c), t, starts_at=f.slot(days=5, hour=9)).status_code == 201  # Pending holds it
    r = move(p["client"], b["id"], f.slot(days=5, hour=9, minute=30))
    assert r.status_code == 409 and r.json()["success"] is False
    r = move(p["client"], b["id"], f.slot(days=5, hour=20))
    assert r.status_code == 422 and "availability" in r.json()["message"]
    r = move(p["client"], b["id"], f.slot(days=5, hour=12, minute=7))
    assert r.status_code == 422
    r = move(p["client"], b["id"], "2020-01-01T10:00:00Z")
    assert r.status_code == 422
    row = pay.booking_row(api.state.db, b["id"])
    assert row.starts_at.isoformat().replace("+00:00", "Z") == b["startsAt"] and row.reschedule_count == 0
    assert moves(api.state.db, b["id"]) == []
    # A move by half an hour overlaps only itself: allowed.
    assert move(p["client"], b["id"], f.slot(days=3, hour=10, minute=30)).status_code == 200


def test_only_the_bookings_own_parent_or_teacher_may_move_it_and_only_when_confirmed(api, c):
    t, p, b = confirmed(c)
    stranger = f.parent(c)
    assert move(stranger["client"], b["id"], f.slot(days=4)).status_code == 403
    assert move(f.teacher(c)["client"], b["id"], f.slot(days=4)).status_code == 403
    pending = f.book(p, t, starts_at=f.slot(days=6)).json()["data"]
    r = move(p["client"], pending["id"], f.slot(days=7))
    assert r.status_code == 409 and r.json()["data"] == {"reason": "not_confirmed"}
    assert move(p["client"], str(uuid.uuid4()), f.slot(days=4)).status_code == 404
    assert move(c, b["id"], f.slot(days=4)).status_code == 401


def test_the_parents_deadline_and_limit_come_from_the_terms_and_the_teacher_may_still_move_it(api, c):
    t = f.teacher(c)
    set_policy(t, rescheduleDeadlineHours=60, maxReschedules=1)
    t, p, b = confirmed(c, t, days=2)  # about 48 h ahead: inside the 60 h deadline
    r = move(p["client"], b["id"], f.slot(days=5))
    assert r.status_code == 409 and r.json()["data"] == {"reason": "deadline_passed"}
    assert "60 hours" in r.json()["message"]
    # The teacher may, and it does not use up the parent's one change.
    r = move(t["client"], b["id"], f.slot(days=5))
    assert r.status_code == 200 and r.json()["data"]["rescheduleCount"] == 0
    r = move(p["client"], b["id"], f.slot(days=6))
    assert r.status_code == 200 and r.json()["data"]["rescheduleCount"] == 1
    r = move(p["client"], b["id"], f.slot(days=7))
    assert r.status_code == 409 and r.json()["data"] == {"reason": "limit_reached"}
    assert move(t["client"], b["id"], f.slot(days=7)).status_code == 200
    assert [m[4].split(":")[0] for m in moves(api.state.db, b["id"])] == ["user", "user", "user"]
    assert len(moves(api.state.db, b["id"])) == 3


def test_terms_stored_when_paid_decide_later_refunds_and_reschedules(api, c):
    t = f.teacher(c, rate=6000)
    set_policy(t, fullRefundHours=24, lateRefundPercent=50, maxReschedules=1)
    t, p, b = confirmed(c, t, days=3)
    assert b["terms"]["lateRefundPercent"] == 50 and "50% refund" in b["terms"]["sentence"]
    # The teacher changes their terms: no refund at all late, no reschedules, a week's notice.
    set_policy(t, fullRefundHours=24 * 7, lateRefundPercent=0, maxReschedules=0)
    # This booking keeps the terms it was paid under: one change allowed, and a full refund 3 days ahead.
    assert move(p["client"], b["id"], f.slot(days=4)).status_code == 200
    r = p["client"].post(f"/api/Sessions/{b['id']}/cancel")
    assert r.status_code == 200, r.text
    wait_for(lambda: pay.booking_row(api.state.db, b["id"]).refunded_amount == 6000, message="full refund")
    # A booking paid after the change gets the new terms: 3 days ahead is now late, and nothing back.
    t, p2, b2 = confirmed(c, t, days=3, hour=14)
    assert b2["terms"]["fullRefundHours"] == 24 * 7 and b2["terms"]["maxReschedules"] == 0
    r = move(p2["client"], b2["id"], f.slot(days=4, hour=14))
    assert r.status_code == 409 and r.json()["data"] == {"reason": "limit_reached"}
    r = p2["client"].post(f"/api/Sessions/{b2['id']}/cancel")
    assert r.status_code == 200 and r.json()["data"]["refundedAmount"] == 0
    assert pay.refunds(api.state.db, b2["id"]) == []


def test_a_late_cancellation_refunds_the_stored_percentage(api, c):
    t = f.teacher(c, rate=6000)
    set_policy(t, fullRefundHours=24 * 10, lateRefundPercent=25)
    t, p, b = confirmed(c, t, days=3)
    set_policy(t, fullRefundHours=24, lateRefundPercent=100)  # too late for this booking
    r = p["client"].post(f"/api/Sessions/{b['id']}/cancel")
    assert r.status_code == 200, r.text
    wait_for(lambda: pay.booking_row(api.state.db, b["id"]).refunded_amount == 1500, message="25% refund")


def test_the_policy_api_shows_the_platform_defaults_until_the_teacher_sets_their_own(api, c):
    t = f.teacher(c)
    r = t["client"].get("/api/Teachers/me/policy")
    assert r.status_code == 200
    settings = api.state.settings
    assert r.json()["data"] | {"sentence": ""} == {
        "fullRefundHours": settings.refund_full_before_hours,
        "lateRefundPercent": settings.refund_late_percent,
        "rescheduleDeadlineHours": settings.reschedule_deadline_hours,
        "maxReschedules": settings.max_reschedules,
        "isDefault": True,
        "sentence": "",
    }
    data = set_policy(t, fullRefundHours=48, lateRefundPercent=30, rescheduleDeadlineHours=12, maxReschedules=3)
    assert data["isDefault"] is False and data["fullRefundHours"] == 48
    assert data["sentence"] == (
        "Free cancellation up to 48 hours before the start, a 30% refund after that; "
        "change the time up to 3 times, until 12 hours before the start."
    )
    assert t["client"].get("/api/Teachers/me/policy").json()["data"] == data
    for bad in ({"lateRefundPercent": 101}, {"fullRefundHours": -1}, {"maxReschedules": 21}, {"x": 1}):
        r = t["client"].put("/api/Teachers/me/policy", json={**POLICY, **bad})
        assert r.status_code == 422 and r.json()["success"] is False, bad
    assert f.parent(c)["client"].get("/api/Teachers/me/policy").status_code == 403
    assert c.put("/api/Teachers/me/policy", json=POLICY).status_code == 401


def holding_at(db, t, start):
    """How many Pending/Confirmed bookings of the teacher start at `start`."""
    with db.session_scope() as s:
        rows = s.scalars(
            sa.select(Booking).where(
                Booking.teacher_id == uuid.UUID(t["user"]["id"]), Booking.status.in_((0, 1))
            )
        )
        return sum(1 for r in rows if r.starts_at.isoformat().replace("+00:00", "Z") == start)


def _race(calls):
    """Run the calls at the same moment; their status codes."""
    barrier = threading.Barrier(len(calls))

    def go(call):
        barrier.wait()
        return call().status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def test_a_reschedule_racing_a_new_booking_for_the_same_time_has_exactly_one_winner(api, c):
    t, p, b = confirmed(c)
    other = f.parent(c)
    for day in range(4, 9):
        target = f.slot(days=day, hour=12)
        codes = _race(
            [
                lambda target=target: move(p["client"], b["id"], target),
                lambda target=target: f.book(other, t, starts_at=target),
            ]
        )
        assert sorted(codes) in ([200, 409], [201, 409]), codes
        assert holding_at(api.state.db, t, target) == 1
        if 200 in codes:  # the booking moved: its old time is free again, put it back
            assert move(t["client"], b["id"], b["startsAt"]).status_code == 200


def test_two_reschedules_racing_for_the_same_time_have_exactly_one_winner(api, c):
    t, p, b1 = confirmed(c, hour=9)
    t, p, b2 = confirmed(c, t, hour=13, p=p)
    for day in range(4, 9):
        target = f.slot(days=day, hour=16)
        codes = _race(
            [
                lambda target=target: move(p["client"], b1["id"], target),
                lambda target=target: move(t["client"], b2["id"], target),
            ]
        )
        assert sorted(codes) == [200, 409], codes
        assert holding_at(api.state.db, t, target) == 1
        starts = {x["id"]: x["startsAt"] for x in p["client"].get("/api/Sessions/my-bookings").json()["data"]["items"]}
        assert list(starts.values()).count(target) == 1
        # Put both back apart for the next round.
        move(t["client"], b1["id"], f.slot(days=3, hour=9))
        move(t["client"], b2["id"], f.slot(days=3, hour=13))


def test_a_google_meet_event_moves_with_the_booking(api, c):
    """The flow patches the event (recorded Google responses) after the move commits; the link stays."""
    t, p, b = confirmed(c)
    external_id = f"{stable_id(b['id'])} teacher@school.org teacher@school.org"
    meet = "https://meet.google.com/abc-defg-hij"
    with api.state.db.session_scope() as s:
        booking = repo.get(s, uuid.UUID(b["id"]))
        links = {"provider": "google", "url": meet, "external_id": external_id}
        link_records.write_link(s, booking.id, links, without_url=False)
    google, http = oauth_provider([ok(meet_event(b["id"]))])
    svc = dataclasses.replace(api.state.services, meetings=google)
    parent = AuthUser(id=uuid.UUID(p["user"]["id"]), role=Role.PARENT, email=p["email"], full_name="P", time_zone="UTC")
    new = f.slot(days=5, hour=8)
    moved = asyncio.run(flows.reschedule(svc, user=parent, booking_id=uuid.UUID(b["id"]), starts_at=_dt(new)))
    assert moved.meeting_url == meet and moved.meeting_external_id == external_id and moved.meeting_error is None
    [(uri, method, body, _)] = api_calls(http)
    assert method == "PATCH" and uri.split("?")[0] == f"{EVENTS_URI}/{stable_id(b['id'])}"
    assert json.loads(body)["start"]["dateTime"] == _dt(new).isoformat()
    assert json.loads(body)["end"]["dateTime"] == _dt(f.slot(days=5, hour=9)).isoformat()

    # Google down: the booking is moved all the same, the link kept, the failure noted.
    google, http = oauth_provider([({"status": "503"}, "{}")])
    svc = dataclasses.replace(api.state.services, meetings=google)
    moved = asyncio.run(
        flows.reschedule(svc, user=parent, booking_id=uuid.UUID(b["id"]), starts_at=_dt(f.slot(days=6, hour=8)))
    )
    assert moved.starts_at == _dt(f.slot(days=6, hour=8)) and moved.meeting_url == meet
    assert moved.meeting_error == "move_failed:http_503"

    # The meeting-links job tries the move again, and once Google answers the failure is gone.
    google, http = oauth_provider([({"status": "503"}, "{}"), ok(meet_event(b["id"]))])
    svc = dataclasses.replace(api.state.services, meetings=google)
    assert jobs.run("meeting-links", svc, now=utc_now()).counts() == {"move_failed": 1}
    assert jobs.run("meeting-links", svc, now=utc_now()).counts() == {"moved": 1}
    with api.state.db.session_scope() as s:
        booking = repo.get(s, uuid.UUID(b["id"]))
        assert booking.meeting_error is None and booking.meeting_url == meet
    [(_, _, _, _), (uri, method, body, _)] = api_calls(http)
    assert method == "PATCH" and json.loads(body)["start"]["dateTime"] == _dt(f.slot(days=6, hour=8)).isoformat()
    assert jobs.run("meeting-links", svc, now=utc_now()).counts() == {}  # nothing left to move


def _dt(iso: str):
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))
