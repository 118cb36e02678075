"""Emails write times the way the recipient's pages do (tutorbook.localtime): their zone by its
friendly name, their language's clock (12-hour for en-US), and the payment nudge's deadline
with its zone."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from tests import factories as f
from tests.jobs.helpers import booked, confirmed
from tests.notifications.test_mail import run_mail, text_of
from tutorbook.accounts.models import User
from tutorbook.clock import utc_now


def as_us_parent(api, p: dict, zone: str = "America/New_York") -> None:
    with api.state.db.session_scope() as s:
        s.execute(sa.update(User).where(User.id == uuid.UUID(p["user"]["id"])).values(time_zone=zone, locale="en_US"))


def test_a_us_parent_reads_12_hour_times_with_their_zone_named_in_the_confirmation(api, c, smtp, mail_svc):
    p = f.parent(c)
    as_us_parent(api, p)
    x = confirmed(c, parent=p, hour=20)  # 20:00 UTC: 3 PM or 4 PM in New York
    assert run_mail(mail_svc).counts() == {"sent": 2}
    [mail] = smtp.inbox.to(p["email"])
    text = " ".join(text_of(mail).replace("\u202f", " ").split())
    assert " PM" in text and "Eastern Time – New York (E" in text, text
    assert "20:00" not in text and "America/New_York" not in text
    assert "PM" in str(mail["Subject"]).replace("\u202f", " ")
    assert x["b"]["id"]


def test_the_payment_nudge_gives_the_deadline_with_its_zone(api, c, smtp, mail_svc):
    p = f.parent(c)
    as_us_parent(api, p)
    booked(c, parent=p, hour=9)
    assert run_mail(mail_svc, now=utc_now() + timedelta(minutes=11)).counts() == {"sent": 1}
    [nudge] = smtp.inbox.to(p["email"])
    text = " ".join(text_of(nudge).replace("\u202f", " ").split())
    held = text.split("held until ", 1)[1].split(", but", 1)[0]
    assert held.endswith(("EST", "EDT")) and ("AM" in held or "PM" in held), held


def test_registering_keeps_the_browsers_language_for_the_emails(api, c):
    r = c.post(
        "/api/Auth/register",
        json={"email": "us-lang@example.com", "password": f.PASSWORD, "fullName": "Lee", "role": "Parent"},
        headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    assert r.status_code == 201, r.text
    with api.state.db.session_scope() as s:
        assert s.scalar(sa.select(User.locale).where(User.email == "us-lang@example.com")) == "en_US"
