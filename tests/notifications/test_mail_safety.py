"""What users type never becomes mail headers, and one message that cannot be built never holds
up the others: through the API, the outbox and a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from tests import factories as f
from tests.notifications.test_mail import notifications, reset_written, run_mail, text_of
from tests.support import payments as pay
from tutorbook.accounts.models import User
from tutorbook.flows import mail as mail_flow
from tutorbook.notifications import render
from tutorbook.notifications import repository as outbox
from tutorbook.notifications.models import Notification

# Printable text that passes every input check; the email package decodes each encoded word
# into a line break: a Bcc header, or (two line breaks) a body of the attacker's.
EVIL_TEACHER = "Eve =?utf-8?q?=0D=0ABcc:_spy@evil.example?="
EVIL_SUBJECT = "Maths =?utf-8?q?=0D=0ABcc:_spy2@evil.example?="
EVIL_CHILD = "Robin =?utf-8?q?=0D=0A=0D=0AYour_account_is_locked,_log_in_at_http://evil.example?="
HEADERS = {"from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version", "content-type"}
PARTS = ["multipart/alternative", "text/plain", "text/html", "text/calendar"]


def teacher_named(c, full_name: str, *, subjects: tuple[str, ...]) -> dict:
    t = f.register(c, role="Teacher", full_name=full_name)
    profile = {"subjects": list(subjects), "hourlyRate": 6000, "currency": "usd", "timeZone": "UTC", "bio": "bio"}
    assert t["client"].put("/api/Teachers/me", json=profile).status_code == 200
    assert t["client"].put("/api/Teachers/me/availability", json={"windows": f.ALL_WEEK}).status_code == 200
    return t


def confirm(p: dict, t: dict, *, subject: str, student: str) -> dict:
    r = f.book(p, t, subject=subject, student=student, starts_at=f.slot(days=3, hour=11))
    assert r.status_code == 201, r.text
    booking = r.json()["data"]
    assert pay.pay(booking["checkoutUrl"]).status_code == 303
    r = p["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}")
    assert r.json()["data"]["status"] == 1, r.text
    return booking


def test_encoded_words_in_names_and_subjects_never_become_headers_or_a_body(api, c, smtp, mail_svc):
    t = teacher_named(c, EVIL_TEACHER, subjects=(EVIL_SUBJECT,))
    p = f.parent(c)
    kid = f.child(p["client"], full_name=EVIL_CHILD)["id"]
    confirm(p, t, subject=EVIL_SUBJECT, student=kid)

    assert run_mail(mail_svc).counts() == {"sent": 2}
    assert sorted(smtp.inbox.recipients) == sorted([p["email"], t["email"]])  # nobody in a Bcc
    for msg in smtp.inbox.messages:
        assert {name.lower() for name in msg.keys()} == HEADERS
        assert [part.get_content_type() for part in msg.walk()] == PARTS
        subject = str(msg["Subject"])
        assert "\n" not in subject and "\r" not in subject and "Maths" in subject
        assert "Your account is locked" not in msg.as_string()
        body = text_of(msg)
        assert body.startswith("Hello ") and EVIL_TEACHER in body and EVIL_CHILD in body  # shown as typed
    teacher_subject = str(smtp.inbox.to(t["email"])[0]["Subject"])
    assert "Robin" in teacher_subject and "locked" in teacher_subject  # the child's name stays in it, as text


@pytest.mark.parametrize(
    "name",
    [
        EVIL_TEACHER,
        EVIL_CHILD,
        "Eve=?utf-8?b?DQpCY2M6IHNweUBldmlsLmV4YW1wbGU=?=",
        "Ada\u2028Bcc: spy@evil.example",
        "Ada\u2029\u0085\x0b\x0c\x1c Lovelace",
        "Zoë Ünïcödé 😀 " * 12,
    ],
)
def test_a_header_made_of_user_text_is_one_header_on_this_python(name):
    mail = render.Mail(
        to="p@example.com",
        subject=f"Booking confirmed: Maths with {name}, Tue 2 Dec",
        text=f"Hello {name}",
        html="<p>Hello</p>",
        invite=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        invite_method="REQUEST",
        headers={"List-Unsubscribe": f"<https://example.com/u?{name}>"},
    )
    sender, now = "Tutorbook <a@example.com>", datetime.now(UTC)
    msg = render.message(mail, sender=sender, public_url="https://example.com", message_key="k", now=now)
    head = msg.as_bytes().split(b"\n\n", 1)[0].decode("ascii")
    names = [line.split(":", 1)[0].lower() for line in head.splitlines() if line and not line[0].isspace()]
    assert names == ["from", "to", "subject", "date", "message-id", "auto-submitted", "list-unsubscribe"] + [
        "mime-version",
        "content-type",
    ]
    assert "=?" not in render.header_text(name)


def test_a_message_that_cannot_be_built_fails_alone_and_the_batch_goes_on(api, c, smtp, mail_svc):
    t = f.teacher(c)
    p = f.parent(c)
    confirm(p, t, subject="Mathematics", student=p["students"][0])
    broken = f.register(c, role="Parent")
    unrelated = f.register(c, role="Parent")
    with api.state.db.session_scope() as s:
        # A name stored before line separators were refused: its messages are sent, on one line.
        s.execute(sa.update(User).where(User.id == uuid.UUID(t["user"]["id"])).values(full_name="Ada\u2028Lovelace"))
    assert c.post("/api/Auth/forgot-password", json={"email": broken["email"]}).status_code == 202
    reset_written(api)
    with api.state.db.session_scope() as s:
        # An address no header can hold (written by hand, or before addresses were checked),
        # first in the queue.
        s.execute(
            sa.update(Notification)
            .where(Notification.to_address == broken["email"])
            .values(to_address="broken\u2028@example.com", next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    assert c.post("/api/Auth/forgot-password", json={"email": unrelated["email"]}).status_code == 202
    reset_written(api, 2)

    assert run_mail(mail_svc).counts() == {"failed": 1, "sent": 3}
    [failed] = notifications(api, status="failed")
    assert failed.to_address.startswith("broken") and "could not be built" in failed.last_error
    assert failed.payload == {}  # its reset token is wiped like a sent one's
    assert not notifications(api, status="sending")
    [reset] = smtp.inbox.to(unrelated["email"])
    assert "reset-password?token=" in text_of(reset)
    [to_parent] = smtp.inbox.to(p["email"])
    assert "Ada Lovelace" in str(to_parent["Subject"])
    with api.state.db.session_scope() as s:
        assert s.get(User, uuid.UUID(broken["user"]["id"])).mail_undeliverable_at is None  # not the address's fault
    assert run_mail(mail_svc).counts() == {}  # nothing comes back


def test_a_message_the_server_took_is_recorded_through_a_short_loss_of_the_database(
    api, c, smtp, mail_svc, monkeypatch
):
    """A PostgreSQL restart between the server's 250 and the mark (tests/cluster/test_hosts.py,
    drill 4): the mark is tried again, so the message is sent once and recorded in this run,
    not left `sending` until its lease ends (then sent again, and the batch kept waiting)."""
    p = f.register(c, role="Parent")
    assert c.post("/api/Auth/forgot-password", json={"email": p["email"]}).status_code == 202
    reset_written(api)
    real, lost = outbox.mark_sent, []

    def database_away_at_first(session, item, **kw):
        if len(lost) < 2:
            lost.append(item.id)
            raise OperationalError("UPDATE notifications", {}, Exception("server closed the connection"))
        return real(session, item, **kw)

    monkeypatch.setattr(outbox, "mark_sent", database_away_at_first)
    monkeypatch.setattr(mail_flow, "RECORD_RETRY_S", (0.01, 0.01, 0.01))
    assert run_mail(mail_svc).counts() == {"sent": 1}
    assert len(lost) == 2
    assert len(smtp.inbox.to(p["email"])) == 1
    [sent] = notifications(api, kind="password_reset")
    assert sent.status == "sent" and sent.claimed_until is None


def test_a_batch_the_database_lost_mid_way_is_given_back_not_left_to_its_lease(api, c, smtp, mail_svc, monkeypatch):
    """PostgreSQL restarting while the batch is built (drill 4): the job fails, but its claimed
    messages are pending again at once (their attempt not counted), not `sending` for 5 minutes."""
    p = f.register(c, role="Parent")
    assert c.post("/api/Auth/forgot-password", json={"email": p["email"]}).status_code == 202
    reset_written(api)

    def database_away(*args, **kwargs):
        raise OperationalError("SELECT bookings", {}, Exception("server login has been failing"))

    monkeypatch.setattr(mail_flow, "compose", database_away)
    monkeypatch.setattr(mail_flow, "RECORD_RETRY_S", (0.01,))
    with pytest.raises(OperationalError):
        run_mail(mail_svc)
    [back] = notifications(api, kind="password_reset")
    assert (back.status, back.attempts, back.claimed_until) == ("pending", 0, None)
    monkeypatch.undo()
    assert run_mail(mail_svc).counts() == {"sent": 1}
    assert len(smtp.inbox.to(p["email"])) == 1
