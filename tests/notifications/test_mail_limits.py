"""Mail on demand stays bounded: one password reset email per account per interval, however often
it is asked for, and a lesson changed many times in a short while is told once, in its latest
state. The counts are of the messages a real SMTP server received, on both databases."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from tests import factories as f
from tests.jobs.helpers import confirmed, row
from tests.notifications.test_mail import invite_of, notifications, reset_written, run_mail, text_of
from tutorbook.clock import utc_now
from tutorbook.notifications.render import when


def test_thirty_forgot_password_requests_send_one_email_until_the_interval_has_passed(api, c, smtp, mail_svc):
    p = f.register(c, role="Parent")
    marker = f.register(c, role="Parent")
    for _ in range(30):
        assert c.post("/api/Auth/forgot-password", json={"email": p["email"]}).status_code == 202
    assert c.post("/api/Auth/forgot-password", json={"email": marker["email"]}).status_code == 202
    reset_written(api, 2)
    time.sleep(1)  # the last of the 30 background lookups are done by now (they would only add)
    assert run_mail(mail_svc).counts() == {"sent": 2}
    assert len(smtp.inbox.to(p["email"])) == 1
    with api.state.db.session_scope() as s:
        assert s.execute(sa.text("SELECT count(*) FROM password_resets")).scalar_one() == 2

    # Once the interval has passed, a new request sends a new link.
    minutes = mail_svc.settings.password_reset_interval_minutes
    assert minutes == 5
    with api.state.db.session_scope() as s:
        s.execute(sa.text("UPDATE password_resets SET created_at = :at"), {"at": utc_now() - timedelta(minutes=6)})
    assert c.post("/api/Auth/forgot-password", json={"email": p["email"]}).status_code == 202
    reset_written(api, 3)
    assert run_mail(mail_svc).counts() == {"sent": 1}
    assert len(smtp.inbox.to(p["email"])) == 2


def move(t, booking_id: str, starts_at: str) -> None:
    r = t["client"].post(f"/api/Sessions/{booking_id}/reschedule", json={"startsAt": starts_at})
    assert r.status_code == 200, r.text


def test_ten_moves_in_a_short_while_send_one_notice_to_each_side_of_the_latest_time(api, c, smtp, mail_svc):
    x = confirmed(c, days=3, hour=9)
    b = x["b"]["id"]
    original = row(api, b).starts_at
    assert run_mail(mail_svc).counts() == {"sent": 2}
    _, first_invite = invite_of(smtp.inbox.to(x["p"]["email"])[0])
    smtp.inbox.clear()

    for hour in range(10, 20):
        move(x["t"], b, f.slot(days=4, hour=hour))
    final = row(api, b)
    assert final.starts_at == original + timedelta(days=1, hours=10)
    assert run_mail(mail_svc).counts() == {}  # within the window: nothing yet
    window = timedelta(seconds=mail_svc.settings.mail_change_window_seconds)
    assert window == timedelta(minutes=2)
    assert run_mail(mail_svc, now=utc_now() + window + timedelta(seconds=1)).counts() == {"sent": 2}

    for address in (x["p"]["email"], x["t"]["email"]):
        [msg] = smtp.inbox.to(address)
        method, event = invite_of(msg)
        assert method == "REQUEST" and event.decoded("dtstart") == final.starts_at
        assert str(event["uid"]) == str(first_invite["uid"]) and int(event["sequence"]) > int(first_invite["sequence"])
        # Told where the lesson was when they last heard of it, not the ninth of ten times.
        assert f"It was {when(original, original + timedelta(hours=1), 'UTC')}" in " ".join(text_of(msg).split())
    superseded = notifications(api, kind="rescheduled.parent", status="skipped")
    assert len(superseded) == 9 and {n.last_error for n in superseded} == {"superseded by a later change"}


def test_a_lesson_moved_and_moved_back_in_a_short_while_sends_nothing(api, c, smtp, mail_svc):
    x = confirmed(c, days=3, hour=9)
    b = x["b"]["id"]
    run_mail(mail_svc)
    smtp.inbox.clear()
    move(x["t"], b, f.slot(days=3, hour=13))
    move(x["t"], b, f.slot(days=3, hour=9))
    later = utc_now() + timedelta(seconds=mail_svc.settings.mail_change_window_seconds + 1)
    assert run_mail(mail_svc, now=later).counts() == {"skipped": 2}
    assert smtp.inbox.messages == []
