"""The operator console and the mail: resending a confirmation (a new notice in the outbox and an
admin action, in one transaction), the emails of a booking on its page, failures on /admin."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa

from tests.jobs.helpers import booked, confirmed
from tests.notifications.test_mail import invite_of, notifications, run_mail
from tests.support import payments as pay
from tests.support.servers import wait_for
from tests.web.helpers import WebClient, assert_clean, text_of
from tutorbook.bookings.models import AdminAction
from tutorbook.notifications.models import DevMail


def linked(api, c):
    """A Confirmed booking whose meeting link is made (the confirmation waits for it)."""
    x = confirmed(c)
    wait_for(lambda: pay.booking_row(api.state.db, x["b"]["id"]).meeting_url, message="meeting link")
    return x


def actions(api, booking_id) -> list[AdminAction]:
    with api.state.db.session_scope() as s:
        stmt = sa.select(AdminAction).where(AdminAction.session_id == uuid.UUID(booking_id))
        return list(s.scalars(stmt.order_by(AdminAction.id)))


def resend(admin_web, booking_id, **form):
    admin_web.get(f"/admin/bookings/{booking_id}")
    r = admin_web.post(f"/admin/bookings/{booking_id}/resend-confirmation", form)
    assert r.status_code == 303, r.text
    return text_of(admin_web.get(r.headers["location"]))


def test_resending_the_confirmation_writes_a_new_notice_and_the_admins_action(api, c, admin, admin_web):
    x = linked(api, c)
    b = x["b"]
    assert run_mail(api.state.services).counts() == {"kept": 2}  # the development mailbox
    [first] = notifications(api, kind="confirmed.parent")

    page = resend(admin_web, b["id"], to="parent", reason="parent  lost the email")
    assert "The confirmation was queued again: 1 email is on the way." in page
    sent = sorted(notifications(api, kind="confirmed.parent"), key=lambda n: n.version)
    assert [n.status for n in sent] == ["sent", "pending"]
    again = sent[1]
    assert again.version > first.version and again.to_address == x["p"]["email"]
    assert again.payload == {"sequence": first.version, "resent": True}
    assert len(notifications(api, kind="confirmed.teacher")) == 1  # the teacher was not chosen
    [action] = actions(api, b["id"])
    assert (action.action, action.actor, action.note) == (
        "resend_confirmation",
        f"user:{admin['id']}",
        "parent lost the email",
    )
    assert action.detail == f"to parent {x['p']['email']}"

    assert run_mail(api.state.services).counts() == {"kept": 1}
    with api.state.db.session_scope() as s:
        kept = list(s.scalars(sa.select(DevMail).where(DevMail.to_address == x["p"]["email"])))
    assert [m.subject.startswith("Booking confirmed") for m in kept] == [True, True]
    # The resent invite is the same event at the same SEQUENCE: a later change still supersedes it.
    assert {re.search(r"SEQUENCE:(\d+)", m.raw).group(1) for m in kept} == {str(first.version)}

    page = admin_web.get(f"/admin/bookings/{b['id']}")
    text = text_of(page)
    assert "confirmed · parent (resent) sent" in text and "confirmed · teacher sent" in text
    assert "resend confirmation" in text and "parent lost the email" in text
    assert len(re.findall(r'<tr class="email" data-status="sent">', page.text)) == 3
    assert "Open in the development mailbox" in text
    assert_clean(page)


def test_resent_to_both_and_a_later_cancellation_still_supersedes_the_invite(api, c, smtp, mail_svc, admin_web):
    x = linked(api, c)
    b = x["b"]
    assert run_mail(mail_svc).counts() == {"sent": 2}
    smtp.inbox.clear()
    assert "2 emails are on the way" in resend(admin_web, b["id"], to="both")
    assert run_mail(mail_svc).counts() == {"sent": 2}
    method, resent = invite_of(smtp.inbox.to(x["p"]["email"])[0])
    assert method == "REQUEST" and len(smtp.inbox.to(x["t"]["email"])) == 1

    smtp.inbox.clear()
    assert x["p"]["client"].post(f"/api/Sessions/{b['id']}/cancel").status_code == 200
    run_mail(mail_svc)
    cancel = next(m for m in smtp.inbox.to(x["p"]["email"]) if m["Subject"].startswith("Booking cancelled"))
    method, event = invite_of(cancel)
    assert method == "CANCEL" and event["uid"] == resent["uid"]
    assert int(event["sequence"]) > int(resent["sequence"])


def test_only_a_confirmed_booking_has_a_confirmation_to_resend(api, c, admin_web):
    pending = booked(c)["b"]
    page = resend(admin_web, pending["id"], to="parent")
    assert "A Pending booking has no confirmation to resend" in page
    assert "Only a Confirmed booking has a confirmation to resend." in page
    x = linked(api, c)
    for form, words in [
        ({"to": "everyone"}, "Choose who gets it"),
        ({"to": "parent", "reason": "x" * 501}, "at most 500 characters"),
    ]:
        assert words in resend(admin_web, x["b"]["id"], **form)
    for booking_id in (pending["id"], x["b"]["id"]):
        assert actions(api, booking_id) == []
    written = notifications(api, booking_id=uuid.UUID(x["b"]["id"]))
    kinds = sorted(n.kind for n in written if n.kind.startswith("confirmed."))
    assert kinds == ["confirmed.parent", "confirmed.teacher"]


def test_resend_is_for_admins_only_and_needs_the_csrf_token(api, c, admin_web):
    x = linked(api, c)
    path = f"/admin/bookings/{x['b']['id']}/resend-confirmation"
    for email in (x["p"]["email"], x["t"]["email"]):
        other = WebClient(api.state.base_url)
        other.login(email)
        assert other.post(path, {"to": "parent"}).status_code == 403
        other.close()
    anonymous = WebClient(api.state.base_url)
    anonymous.get("/")
    r = anonymous.post(path, {"to": "parent"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    anonymous.close()
    admin_web.get("/admin")
    r = admin_web.post(path, {"to": "parent"}, csrf=False)
    assert r.status_code == 403 and "did not come from Tutorbook" in text_of(r)
    assert len(notifications(api, kind="confirmed.parent")) == 1 and actions(api, x["b"]["id"]) == []


def test_a_refused_address_shows_as_a_failure_on_today_and_on_the_booking(api, c, smtp, mail_svc, admin_web):
    x = linked(api, c)
    b = x["b"]
    today = text_of(admin_web.get("/admin"))
    assert "0 failed (last 7 days) · 0 waiting to retry" in today and "Emails that failed" not in today
    smtp.inbox.refuse.add(x["p"]["email"])
    assert run_mail(mail_svc).counts() == {"failed": 1, "sent": 1}

    page = admin_web.get("/admin")
    today = text_of(page)
    assert "1 failed (last 7 days)" in today and "1 address refused for good" in today
    assert "Emails that failed" in today and x["p"]["email"] in today and "550" in today
    assert f'href="/admin/bookings/{b["id"]}"' in page.text
    assert_clean(page)

    page = admin_web.get(f"/admin/bookings/{b['id']}")
    assert len(re.findall(r'<tr class="email" data-status="failed">', page.text)) == 1
    assert "No such mailbox" in text_of(page)
