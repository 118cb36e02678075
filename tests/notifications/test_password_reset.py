"""The password reset link: a used or expired one is refused as soon as its page opens (not only
when the form is sent), and a successful reset emails the owner that the password was changed."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests import factories as f
from tests.notifications.test_mail import notifications, reset_written, run_mail, text_of
from tests.web.helpers import WebClient, assert_clean
from tests.web.helpers import text_of as page_text

CLOSED = "This link no longer works"


def reset_link(api, c, smtp, mail_svc, email: str, count: int = 1) -> str:
    """Ask for a reset of `email` and send the mail: the token in the link."""
    assert c.post("/api/Auth/forgot-password", json={"email": email}).status_code == 202
    reset_written(api, count)
    run_mail(mail_svc)
    msg = next(m for m in reversed(smtp.inbox.messages) if m["To"] == email)
    return re.search(r"/reset-password\?token=([\w-]+)", text_of(msg)).group(1)


def test_a_used_or_expired_reset_link_is_refused_when_its_page_opens(api, c, smtp, mail_svc):
    p, q = f.register(c, role="Parent"), f.register(c, role="Parent")
    token = reset_link(api, c, smtp, mail_svc, p["email"])
    web = WebClient(api.state.base_url)
    try:
        page = web.get(f"/reset-password?token={token}")
        assert page.status_code == 200 and 'name="password"' in page.text and CLOSED not in page.text
        assert c.post("/api/Auth/reset-password", json={"token": token, "password": "a-new-long-passphrase"}).is_success

        used = web.get(f"/reset-password?token={token}")
        assert used.status_code == 400 and CLOSED in page_text(used) and 'name="password"' not in used.text
        assert 'href="/forgot-password"' in used.text
        assert_clean(used)

        expired = reset_link(api, c, smtp, mail_svc, q["email"], count=2)
        with api.state.db.session_scope() as s:
            s.execute(sa.text("UPDATE password_resets SET expires_at = created_at"))
        r = web.get(f"/reset-password?token={expired}")
        assert r.status_code == 400 and CLOSED in page_text(r) and 'name="password"' not in r.text
        for bogus in ("", "?token=", "?token=not-a-token", "?token=" + "x" * 500):
            r = web.get(f"/reset-password{bogus}")
            assert r.status_code == 400 and CLOSED in page_text(r)
    finally:
        web.close()


def test_a_reset_by_the_api_or_the_page_emails_that_the_password_was_changed(api, c, smtp, mail_svc):
    p, q = f.register(c, role="Parent"), f.register(c, role="Parent")
    token = reset_link(api, c, smtp, mail_svc, p["email"])
    r = c.post("/api/Auth/reset-password", json={"token": token, "password": "a-new-long-passphrase"})
    assert r.status_code == 200, r.text

    token = reset_link(api, c, smtp, mail_svc, q["email"], count=2)
    web = WebClient(api.state.base_url)
    try:
        web.get(f"/reset-password?token={token}")
        form = {"token": token, "password": "another-long-passphrase", "confirm": "another-long-passphrase"}
        assert web.post("/reset-password", form).status_code == 303
    finally:
        web.close()

    run_mail(mail_svc)
    for who in (p, q):
        [msg] = [m for m in smtp.inbox.to(who["email"]) if "reset" not in str(m["Subject"]).lower()]
        assert str(msg["Subject"]) == "Your Tutorbook password was changed"
        body = text_of(msg)
        assert "was changed on" in body and "/forgot-password" in body and "token=" not in body
    assert {n.status for n in notifications(api, kind="password_changed")} == {"sent"}

    # A refused reset (the link used already) changes nothing and tells nobody.
    again = c.post("/api/Auth/reset-password", json={"token": token, "password": "third-long-passphrase"})
    assert again.status_code == 400
    assert len(notifications(api, kind="password_changed")) == 2
