"""Notifications end to end: bookings through the API, the mail job sending to a real SMTP
server started by the test, what arrives parsed with `email` and `icalendar`."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
from icalendar import Calendar

from tests import factories as f
from tests.jobs.helpers import booked, confirmed, row
from tutorbook import jobs
from tutorbook.accounts.models import User
from tutorbook.clock import utc_now
from tutorbook.flows import mail as mail_flow
from tutorbook.notifications.models import Notification


def run_mail(svc, now=None):
    return jobs.run("mail", svc, now=now or utc_now())


def invite_of(msg):
    """(METHOD, the VEVENT) of the message's text/calendar part."""
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    cal = Calendar.from_ical(part.get_content())
    assert part.get_param("method") == str(cal["method"])
    return str(cal["method"]), cal.walk("VEVENT")[0]


def text_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def subjects(inbox, address):
    return sorted(m["Subject"] for m in inbox.to(address))


def notifications(api, **where):
    with api.state.db.session_scope() as s:
        stmt = sa.select(Notification)
        for key, value in where.items():
            stmt = stmt.where(getattr(Notification, key) == value)
        return list(s.scalars(stmt))


def test_confirmation_carries_a_request_invite_and_cancellation_a_cancel_of_the_same_uid(api, c, smtp, mail_svc):
    t = f.teacher(c, time_zone="Asia/Tokyo")
    x = confirmed(c, teacher=t)
    booking = row(api, x["b"]["id"])
    assert run_mail(mail_svc).counts() == {"sent": 2}

    [to_parent] = smtp.inbox.to(x["p"]["email"])
    assert to_parent["Subject"].startswith("Booking confirmed: Mathematics with")
    method, event = invite_of(to_parent)
    assert method == "REQUEST"
    uid, sequence = str(event["uid"]), int(event["sequence"])
    assert str(booking.id) in uid
    assert str(event["location"]) == booking.meeting_url == str(event["url"])
    assert event.decoded("dtstart") == booking.starts_at
    text = text_of(to_parent)
    assert booking.meeting_url in text and "(UTC)" in text and "USD 60.00" in text
    assert to_parent.get_body(preferencelist=("html",)) is not None
    [to_teacher] = smtp.inbox.to(t["email"])
    assert to_teacher["Subject"].startswith("New paid booking")
    # the teacher's own zone, by its name (not the raw id)
    assert "Tokyo (JST)" in text_of(to_teacher) and "Asia/Tokyo" not in text_of(to_teacher)
    assert invite_of(to_teacher)[1]["uid"] == uid

    smtp.inbox.clear()
    r = x["p"]["client"].post(f"/api/Sessions/{booking.id}/cancel")
    assert r.status_code == 200, r.text
    assert run_mail(mail_svc).counts() == {"sent": 3}  # cancellation x2, refund issued
    assert subjects(smtp.inbox, x["p"]["email"]) == [
        next(s for s in subjects(smtp.inbox, x["p"]["email"]) if s.startswith("Booking cancelled")),
        "Refund issued: USD 60.00",
    ]
    cancel = next(m for m in smtp.inbox.to(x["p"]["email"]) if m["Subject"].startswith("Booking cancelled"))
    method, event = invite_of(cancel)
    assert method == "CANCEL" and str(event["uid"]) == uid and int(event["sequence"]) > sequence
    assert "A refund of USD 60.00" in text_of(cancel) and "cancelled by the parent" in text_of(cancel)
    method, event = invite_of(smtp.inbox.to(t["email"])[0])
    assert method == "CANCEL" and str(event["uid"]) == uid

    assert run_mail(mail_svc).counts() == {}  # nothing twice


def test_complete_your_payment_goes_only_while_the_booking_is_pending_and_unpaid(api, c, smtp, mail_svc):
    unpaid = booked(c, hour=9)
    paid = confirmed(c, teacher=unpaid["t"], hour=12)
    assert run_mail(mail_svc).counts() == {"sent": 2}  # the paid one's confirmations; no nudge yet
    smtp.inbox.clear()

    result = run_mail(mail_svc, now=utc_now() + timedelta(minutes=11))
    assert result.counts() == {"sent": 1, "skipped": 1}
    [nudge] = smtp.inbox.messages
    assert nudge["To"] == unpaid["p"]["email"] and "complete the payment" in nudge["Subject"]
    assert unpaid["b"]["checkoutUrl"] in text_of(nudge)
    [skipped] = notifications(api, booking_id=uuid.UUID(paid["b"]["id"]), kind="payment_pending.parent")
    assert skipped.status == "skipped"


def test_reminders_24h_and_1h_before_once_each_and_none_after_unsubscribing(api, c, smtp, mail_svc):
    x = confirmed(c, days=3, hour=10)
    starts = row(api, x["b"]["id"]).starts_at
    run_mail(mail_svc)
    smtp.inbox.clear()

    assert jobs.run("reminders", mail_svc, now=starts - timedelta(hours=25)).counts().get("written:2") is None
    day_before = starts - timedelta(hours=24) + timedelta(minutes=1)
    jobs.run("reminders", mail_svc, now=day_before)
    jobs.run("reminders", mail_svc, now=day_before + timedelta(minutes=5))  # again: nothing new
    run_mail(mail_svc, now=day_before + timedelta(minutes=5))
    reminders = [m for m in smtp.inbox.messages if m["Subject"].startswith("Reminder")]
    assert sorted(m["To"] for m in reminders) == sorted([x["p"]["email"], x["t"]["email"]])
    assert all("in about 24 hours" in m["Subject"] for m in reminders)
    to_parent = next(m for m in reminders if m["To"] == x["p"]["email"])
    assert "/notifications/unsubscribe?" in to_parent["List-Unsubscribe"]
    assert row(api, x["b"]["id"]).meeting_url in text_of(to_parent)

    # The parent follows the unsubscribe link in the reminder (a page with a form).
    link = re.search(r"<(.+)>", to_parent["List-Unsubscribe"]).group(1)
    page = c.get(link.replace(api.state.base_url, ""))
    assert page.status_code == 200 and "Stop reminders" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    user_id, sig = re.search(r"user=([^&]+)&sig=(\w+)", link).groups()
    r = c.post("/notifications/unsubscribe", data={"csrf_token": token, "user": user_id, "sig": sig})
    assert r.status_code == 200 and "no more reminders" in r.text
    bad = c.get(f"/notifications/unsubscribe?user={user_id}&sig={'0' * 64}")
    assert bad.status_code == 404

    smtp.inbox.clear()
    hour_before = starts - timedelta(minutes=50)
    jobs.run("reminders", mail_svc, now=hour_before)
    run_mail(mail_svc, now=hour_before)
    [only] = [m for m in smtp.inbox.messages if m["Subject"].startswith("Reminder")]
    assert only["To"] == x["t"]["email"] and "in about an hour" in only["Subject"]


def test_a_session_moved_after_its_reminder_is_reminded_of_its_new_time(api, c, smtp, mail_svc):
    x = confirmed(c, days=3, hour=10)
    starts = row(api, x["b"]["id"]).starts_at
    jobs.run("reminders", mail_svc, now=starts - timedelta(hours=24) + timedelta(minutes=1))
    assert [n.version for n in notifications(api, kind="reminder.parent")] == [24]

    url = f"/api/Sessions/{x['b']['id']}/reschedule"
    moved = x["p"]["client"].post(url, json={"startsAt": f.slot(days=4, hour=10)})
    assert moved.status_code == 200, moved.text
    new_start = row(api, x["b"]["id"]).starts_at
    assert new_start == starts + timedelta(days=1)

    jobs.run("reminders", mail_svc, now=new_start - timedelta(hours=24) + timedelta(minutes=1))
    assert sorted(n.version for n in notifications(api, kind="reminder.parent")) == [24, 124]
    smtp.inbox.clear()
    run_mail(mail_svc, now=new_start - timedelta(hours=24) + timedelta(minutes=2))
    to_parent = [m for m in smtp.inbox.messages if m["Subject"].startswith("Reminder") and m["To"] == x["p"]["email"]]
    assert to_parent and all("in about 24 hours" in m["Subject"] for m in to_parent)


def test_no_reminder_for_a_cancelled_session(api, c, smtp, mail_svc):
    x = confirmed(c, days=3, hour=11)
    starts = row(api, x["b"]["id"]).starts_at
    jobs.run("reminders", mail_svc, now=starts - timedelta(hours=23))
    assert x["p"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel").status_code == 200
    smtp.inbox.clear()
    run_mail(mail_svc, now=starts - timedelta(hours=23))
    assert not [m for m in smtp.inbox.messages if m["Subject"].startswith("Reminder")]
    assert {n.status for n in notifications(api, kind="reminder.parent")} == {"skipped"}


def reset_written(api, count: int = 1) -> None:
    """The reset is written after the 202 is sent (a background task): wait until it is there."""
    deadline = time.monotonic() + 20
    while len(notifications(api, kind="password_reset")) < count:
        assert time.monotonic() < deadline, "the reset notification was never written"
        time.sleep(0.05)


def test_password_reset_end_to_end_and_the_token_works_once(api, c, smtp, mail_svc):
    p = f.register(c, role="Parent")
    old_token_client = p["client"]
    for email in (p["email"], "nobody-here@example.com"):
        r = c.post("/api/Auth/forgot-password", json={"email": email})
        assert r.status_code == 202 and r.json()["success"] is True
    reset_written(api)
    assert run_mail(mail_svc).counts() == {"sent": 1}
    [msg] = smtp.inbox.messages
    assert msg["To"] == p["email"]
    token = re.search(r"/reset-password\?token=([\w-]+)", text_of(msg)).group(1)
    [n] = notifications(api, kind="password_reset")
    assert n.payload == {}  # the raw token is wiped once sent

    r = c.post("/api/Auth/reset-password", json={"token": token, "password": "a-new-long-passphrase"})
    assert r.status_code == 200, r.text
    assert old_token_client.get("/api/Auth/me").status_code == 401  # earlier login tokens end
    again = c.post("/api/Auth/reset-password", json={"token": token, "password": "another-passphrase-1"})
    assert again.status_code == 400 and again.json()["success"] is False
    assert c.post("/api/Auth/login", json={"email": p["email"], "password": f.PASSWORD}).status_code == 401
    fresh = f.login(c, email=p["email"], password="a-new-long-passphrase")
    assert c.get("/api/Auth/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_a_reset_token_expires_after_30_minutes(api, c, smtp, mail_svc):
    p = f.register(c, role="Parent")
    assert c.post("/api/Auth/forgot-password", json={"email": p["email"]}).status_code == 202
    reset_written(api)
    run_mail(mail_svc)
    token = re.search(r"token=([\w-]+)", text_of(smtp.inbox.messages[0])).group(1)
    with api.state.db.session_scope() as s:
        s.execute(sa.text("UPDATE password_resets SET expires_at = created_at"))
    r = c.post("/api/Auth/reset-password", json={"token": token, "password": "a-new-long-passphrase"})
    assert r.status_code == 400


def test_smtp_down_then_back_loses_nothing_and_sends_nothing_twice(api, c, smtp, mail_svc):
    first = confirmed(c, hour=9)
    confirmed(c, teacher=first["t"], hour=13)
    smtp.stop()
    t0 = utc_now()
    assert run_mail(mail_svc, now=t0).counts() == {"retry": 4}
    waiting = notifications(api, status="pending")
    assert len([n for n in waiting if n.kind.startswith("confirmed")]) == 4
    assert all(n.attempts == 1 and n.next_attempt_at > t0 for n in waiting if n.kind.startswith("confirmed"))

    smtp.start()
    assert run_mail(mail_svc, now=t0).counts() == {}  # not due yet: backoff
    t1 = t0 + timedelta(minutes=2)
    if api.state.db.is_sqlite:
        run_mail(mail_svc, now=t1)
    else:  # two workers at once, one notification per claim, so they interleave
        start = threading.Barrier(2)

        def worker():
            start.wait()
            while mail_flow.deliver(mail_svc, now=t1, limit=1):
                pass

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    got = [(m["To"], m["Subject"]) for m in smtp.inbox.messages]
    assert len(got) == 4 and len(set(got)) == 4
    assert {n.status for n in notifications(api) if n.kind.startswith("confirmed")} == {"sent"}
    assert run_mail(mail_svc, now=t1 + timedelta(hours=1)).counts().get("sent") is None


def test_an_address_refused_for_good_is_marked_and_not_retried(api, c, smtp, mail_svc):
    x = confirmed(c)
    smtp.inbox.refuse.add(x["p"]["email"])
    assert run_mail(mail_svc).counts() == {"failed": 1, "sent": 1}
    [n] = notifications(api, kind="confirmed.parent")
    assert n.status == "failed" and "550" in n.last_error and n.attempts == 1
    with api.state.db.session_scope() as s:
        assert s.get(User, n.user_id).mail_undeliverable_at is not None
    assert run_mail(mail_svc, now=utc_now() + timedelta(days=1)).counts().get("failed") is None


def test_without_smtp_mail_is_kept_in_the_development_mailbox(api, c):
    x = confirmed(c)
    assert run_mail(api.state.services).counts() == {"kept": 2}
    r = c.get("/dev/mail", headers={"Accept": "text/html"})
    assert r.status_code == 200 and "Booking confirmed" in r.text
    mail_id = re.search(r'href="/dev/mail/(\d+)"', r.text).group(1)
    one = c.get(f"/dev/mail/{mail_id}")
    assert one.status_code == 200 and "BEGIN:VCALENDAR" in one.text
    assert x["p"]["email"] in r.text or x["t"]["email"] in r.text
    assert run_mail(api.state.services).counts() == {}


def test_the_calendar_feed_is_private_and_revocable(api, c):
    x = confirmed(c)
    r = x["p"]["client"].post("/api/Notifications/calendar-feed")
    assert r.status_code == 201, r.text
    url = r.json()["data"]["url"]
    feed = c.get(url.replace(api.state.base_url, ""))
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    [event] = Calendar.from_ical(feed.content).walk("VEVENT")
    assert x["b"]["id"] in str(event["uid"]) and str(event["status"]) == "CONFIRMED"
    renewed = x["p"]["client"].post("/api/Notifications/calendar-feed").json()["data"]["url"]
    assert c.get(url.replace(api.state.base_url, "")).status_code == 404
    assert x["p"]["client"].delete("/api/Notifications/calendar-feed").status_code == 200
    assert c.get(renewed.replace(api.state.base_url, "")).status_code == 404


def test_a_reschedule_tells_both_sides_with_a_request_of_the_same_uid_and_a_higher_sequence(api, c, smtp, mail_svc):
    t = f.teacher(c)
    x = confirmed(c, teacher=t)
    assert run_mail(mail_svc).counts() == {"sent": 2}
    _, first = invite_of(smtp.inbox.to(x["p"]["email"])[0])
    smtp.inbox.clear()
    new = f.slot(days=5, hour=14)
    r = t["client"].post(f"/api/Sessions/{x['b']['id']}/reschedule", json={"startsAt": new})
    assert r.status_code == 200, r.text
    after_window = utc_now() + timedelta(seconds=mail_svc.settings.mail_change_window_seconds + 1)
    assert run_mail(mail_svc, now=after_window).counts() == {"sent": 2}
    for address in (x["p"]["email"], t["email"]):
        [msg] = smtp.inbox.to(address)
        assert str(msg["Subject"]).strip().startswith("New time: Mathematics with")
        method, event = invite_of(msg)
        assert method == "REQUEST" and str(event["uid"]) == str(first["uid"])
        assert int(event["sequence"]) > int(first["sequence"])
        assert event.decoded("dtstart") == row(api, x["b"]["id"]).starts_at
        assert "moved by the teacher" in text_of(msg)
    assert "Nothing more to pay" in text_of(smtp.inbox.to(x["p"]["email"])[0])
    assert run_mail(mail_svc, now=after_window).counts() == {}  # nothing twice
