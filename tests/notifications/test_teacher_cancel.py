"""A teacher cancelling a paid session is told what the parent gets (not "You will get a full
refund") and may give the parent a reason, which the parent's cancellation email quotes and the
booking's history keeps."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from tests.jobs.helpers import confirmed
from tests.notifications.test_mail import run_mail, text_of
from tests.web.helpers import WebClient
from tests.web.helpers import text_of as page_text
from tutorbook.bookings.models import StatusHistory


def test_the_teacher_is_told_what_the_parent_gets_and_the_parent_reads_the_teachers_reason(api, c, smtp, mail_svc):
    x = confirmed(c)
    assert run_mail(mail_svc).counts() == {"sent": 2}
    smtp.inbox.clear()
    web = WebClient(api.state.base_url)
    web.login(x["t"]["email"])
    page = page_text(web.get(f"/bookings/{x['b']['id']}/cancel"))
    assert "The parent gets a full refund of USD 60.00" in page and "You will get" not in page
    assert "A word to the parent" in page
    r = web.post(f"/bookings/{x['b']['id']}/cancel", {"note": "I am ill,\nsorry - next week?"})
    assert r.status_code == 303
    assert "Refunded: USD 60.00 (to the parent)" in page_text(web.get(r.headers["location"]))
    run_mail(mail_svc)
    [to_parent] = [m for m in smtp.inbox.to(x["p"]["email"]) if "cancelled" in m["Subject"].lower()]
    assert 'The teacher wrote: "I am ill, sorry - next week?"' in text_of(to_parent)
    with api.state.db.session_scope() as s:
        notes = s.scalars(
            sa.select(StatusHistory.note).where(StatusHistory.session_id == uuid.UUID(x["b"]["id"]))
        ).all()
    assert "I am ill, sorry - next week?" in notes
    web.close()


def test_a_teacher_who_gives_no_reason_sends_no_quote_and_a_parent_is_not_offered_one(api, c, smtp, mail_svc):
    x = confirmed(c)
    parent = WebClient(api.state.base_url)
    parent.login(x["p"]["email"])
    assert "A word to the parent" not in page_text(parent.get(f"/bookings/{x['b']['id']}/cancel"))
    parent.close()
    run_mail(mail_svc)
    smtp.inbox.clear()
    web = WebClient(api.state.base_url)
    web.login(x["t"]["email"])
    web.get(f"/bookings/{x['b']['id']}/cancel")
    assert web.post(f"/bookings/{x['b']['id']}/cancel", {"note": "  "}).status_code == 303
    run_mail(mail_svc)
    [to_parent] = [m for m in smtp.inbox.to(x["p"]["email"]) if "cancelled" in m["Subject"].lower()]
    assert "The teacher wrote" not in text_of(to_parent)
    web.close()


def test_a_reason_too_long_is_refused_with_a_message_and_nothing_is_cancelled(api, c):
    x = confirmed(c)
    web = WebClient(api.state.base_url)
    web.login(x["t"]["email"])
    web.get(f"/bookings/{x['b']['id']}/cancel")
    r = web.post(f"/bookings/{x['b']['id']}/cancel", {"note": "x" * 501})
    assert r.status_code == 303
    assert "at most 500 characters" in page_text(web.get(r.headers["location"]))
    assert x["p"]["client"].get(f"/api/Sessions/{x['b']['id']}").json()["data"]["status"] == 1
    web.close()


def test_the_api_takes_a_teachers_reason_and_refuses_one_from_a_parent(api, c, smtp, mail_svc):
    x = confirmed(c)
    r = x["p"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel", json={"reason": "changed my mind"})
    assert r.status_code == 422 and r.json()["data"][0]["field"] == "reason"
    assert x["p"]["client"].get(f"/api/Sessions/{x['b']['id']}").json()["data"]["status"] == 1
    run_mail(mail_svc)
    smtp.inbox.clear()
    r = x["t"]["client"].post(f"/api/Sessions/{x['b']['id']}/cancel", json={"reason": "Flu, sorry"})
    assert r.status_code == 200 and r.json()["data"]["status"] == 3
    run_mail(mail_svc)
    [to_parent] = [m for m in smtp.inbox.to(x["p"]["email"]) if "cancelled" in m["Subject"].lower()]
    assert 'The teacher wrote: "Flu, sorry"' in text_of(to_parent)
    # No body at all still cancels (the existing clients send none).
    y = confirmed(c, teacher=x["t"], hour=14)
    assert x["t"]["client"].post(f"/api/Sessions/{y['b']['id']}/cancel").status_code == 200
