"""One calendar entry per lesson (the emailed invites, the "Add to calendar" download and the feed
share its UID), and an operator's cancellation tells both sides like any other, without the
lesson's meeting link: through the pages, the outbox and a real SMTP server, on both databases."""

from __future__ import annotations

from icalendar import Calendar

from tests.notifications.test_console import linked
from tests.notifications.test_mail import invite_of, run_mail, text_of
from tests.support import payments as pay
from tests.web.helpers import WebClient


def event_of(body: bytes):
    """(METHOD or None, the one VEVENT) of an iCalendar file, parsed with `icalendar`."""
    cal = Calendar.from_ical(body)
    [event] = cal.walk("VEVENT")
    return (str(cal["method"]) if "method" in cal else None), event


def parts_of(msg) -> str:
    """Every text part of an email (plain, HTML, calendar), decoded."""
    return "\n".join(p.get_content() for p in msg.walk() if p.get_content_maintype() == "text")


def test_the_download_the_invites_and_the_feed_are_one_event_with_one_uid(api, c, smtp, mail_svc):
    x = linked(api, c)
    assert run_mail(mail_svc).counts() == {"sent": 2}
    method, invite = invite_of(smtp.inbox.to(x["p"]["email"])[0])
    assert method == "REQUEST"

    web = WebClient(api.state.base_url)
    web.login(x["p"]["email"])
    r = web.get(f"/bookings/{x['b']['id']}/calendar.ics")
    web.close()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    download_method, download = event_of(r.content)
    feed_url = x["p"]["client"].post("/api/Notifications/calendar-feed").json()["data"]["url"]
    _, in_feed = event_of(c.get(feed_url.replace(api.state.base_url, "")).content)

    assert str(download["uid"]) == str(invite["uid"]) == str(in_feed["uid"])
    # The download is the invite as the booking is now: a calendar takes it as that same event
    # (not a PUBLISHed copy that later updates never reach).
    assert download_method == "REQUEST"
    assert int(download["sequence"]) == int(invite["sequence"]) == int(in_feed["sequence"])
    assert str(download["summary"]) == str(invite["summary"]) == str(in_feed["summary"])
    assert download.decoded("dtstart") == invite.decoded("dtstart")

    # A later change replaces that one entry: same UID, higher SEQUENCE, everywhere.
    smtp.inbox.clear()
    assert x["p"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel").status_code == 200
    run_mail(mail_svc)
    cancel = next(m for m in smtp.inbox.to(x["p"]["email"]) if m["Subject"].startswith("Booking cancelled"))
    method, cancelled = invite_of(cancel)
    _, in_feed = event_of(c.get(feed_url.replace(api.state.base_url, "")).content)
    assert method == "CANCEL" and str(cancelled["uid"]) == str(download["uid"]) == str(in_feed["uid"])
    assert int(cancelled["sequence"]) == int(in_feed["sequence"]) > int(download["sequence"])
    assert str(in_feed["status"]) == "CANCELLED" and "url" not in in_feed


def cancel_as_admin(admin_web, booking_id: str, refund: str) -> None:
    admin_web.get(f"/admin/bookings/{booking_id}")
    r = admin_web.post(f"/admin/bookings/{booking_id}/cancel", {"refund": refund, "reason": "The teacher is ill"})
    assert r.status_code == 303


def test_an_operators_cancellation_tells_both_sides_with_a_cancel_and_no_join_link(
    api, c, smtp, mail_svc, admin_web
):
    x = linked(api, c)
    meeting = pay.booking_row(api.state.db, x["b"]["id"]).meeting_url
    assert meeting and run_mail(mail_svc).counts() == {"sent": 2}
    _, confirmed = invite_of(smtp.inbox.to(x["p"]["email"])[0])
    smtp.inbox.clear()

    cancel_as_admin(admin_web, x["b"]["id"], "full")
    assert pay.refunds(api.state.db, x["b"]["id"])[0].status == "succeeded"
    assert run_mail(mail_svc).counts() == {"sent": 3}
    to_parent = sorted(str(m["Subject"]) for m in smtp.inbox.to(x["p"]["email"]))
    assert [s.split(":")[0] for s in to_parent] == ["Booking cancelled", "Refund issued"]
    assert "Refund issued: USD 60.00" in to_parent
    [to_teacher] = smtp.inbox.to(x["t"]["email"])
    for msg in (*smtp.inbox.to(x["p"]["email"]), to_teacher):
        assert meeting not in parts_of(msg) and "Join" not in text_of(msg) and "None" not in parts_of(msg)
    for msg in (next(m for m in smtp.inbox.to(x["p"]["email"]) if "cancelled" in m["Subject"]), to_teacher):
        method, event = invite_of(msg)
        assert method == "CANCEL" and str(event["uid"]) == str(confirmed["uid"])
        assert int(event["sequence"]) > int(confirmed["sequence"]) and "url" not in event
        assert "cancelled by the Tutorbook team" in text_of(msg)
    assert "A refund of USD 60.00 is on its way" in text_of(smtp.inbox.to(x["p"]["email"])[0])


def test_an_operators_cancellation_without_refund_says_so_and_sends_no_refund_email(
    api, c, smtp, mail_svc, admin_web
):
    x = linked(api, c)
    run_mail(mail_svc)
    smtp.inbox.clear()
    cancel_as_admin(admin_web, x["b"]["id"], "none")
    assert run_mail(mail_svc).counts() == {"sent": 2}
    [to_parent] = smtp.inbox.to(x["p"]["email"])
    assert str(to_parent["Subject"]).startswith("Booking cancelled")
    body = text_of(to_parent)
    assert "No refund is made for this session." in body and "cancellation policy" not in body
    assert "None" not in parts_of(to_parent)
