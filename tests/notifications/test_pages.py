"""The pages without JavaScript: forgot / reset password from the login page, the development
mailbox (404 in production), `tutorbook mail list / show`."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from tests import factories as f
from tests.jobs.helpers import confirmed
from tests.notifications.test_mail import reset_written, run_mail, text_of
from tests.web.helpers import WebClient
from tutorbook import cli
from tutorbook.config import get_settings


def test_forgot_and_reset_password_through_the_pages(api, c, smtp, mail_svc):
    p = f.register(c, role="Parent")
    web = WebClient(api.state.base_url)
    login = web.get("/login")
    assert 'href="/forgot-password"' in login.text
    page = web.get("/forgot-password")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    r = web.post("/forgot-password", {"email": p["email"]})
    assert r.status_code == 202 and "on its way" in r.text
    assert web.post("/forgot-password", {"email": p["email"]}, csrf=False).status_code == 403
    reset_written(api)
    run_mail(mail_svc)
    link = re.search(r"(/reset-password\?token=[\w-]+)", text_of(smtp.inbox.messages[0])).group(1)

    form = web.get(link)
    assert form.status_code == 200 and 'name="token"' in form.text
    token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)
    differ = web.post("/reset-password", {"token": token, "password": "one-long-passphrase", "confirm": "other"})
    assert differ.status_code == 400 and "differ" in differ.text
    done = web.post(
        "/reset-password", {"token": token, "password": "one-long-passphrase", "confirm": "one-long-passphrase"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/login"
    again = web.post(
        "/reset-password", {"token": token, "password": "two-long-passphrase", "confirm": "two-long-passphrase"}
    )
    assert again.status_code == 400 and "invalid, used or expired" in again.text
    web.login(p["email"], "one-long-passphrase")


def test_the_development_mailbox_is_404_in_production(api, c):
    svc = api.state.services
    development = svc.settings
    assert c.get("/dev/mail").status_code == 200
    svc.settings = development.model_copy(update={"env": "production"})
    try:
        assert c.get("/dev/mail").status_code == 404
        assert c.get("/dev/mail/1").status_code == 404
    finally:
        svc.settings = development


def test_a_mailbox_id_beyond_the_database_integer_is_404_not_500(c):
    for mail_id in ("99999999999999999999", str(2**63), "0", "-1"):
        r = c.get(f"/dev/mail/{mail_id}")
        assert r.status_code == 404, (mail_id, r.status_code)


def test_mail_list_and_show_on_the_command_line(api, c, tmp_path, monkeypatch):
    x = confirmed(c)
    run_mail(api.state.services)
    for key, value in {
        "DATABASE_URL": api.state.db.url,
        "VAR_DIR": str(tmp_path),
        "JWT_SECRET": "test-secret-" + "x" * 32,
        "STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
        "LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(f"TUTORBOOK_{key}", value)
    get_settings.cache_clear()
    try:
        listed = CliRunner().invoke(cli.app, ["mail", "list", "--to", x["p"]["email"]])
        assert listed.exit_code == 0 and "Booking confirmed" in listed.stdout
        mail_id = listed.stdout.splitlines()[1].split()[0]
        shown = CliRunner().invoke(cli.app, ["mail", "show", mail_id])
        assert shown.exit_code == 0 and "METHOD:REQUEST" in shown.stdout and x["p"]["email"] in shown.stdout
        outbox = CliRunner().invoke(cli.app, ["mail", "list", "--status", "sent"])
        assert outbox.exit_code == 0 and "confirmed.parent" in outbox.stdout
        assert CliRunner().invoke(cli.app, ["mail", "show", "999999"]).exit_code == 1
    finally:
        get_settings.cache_clear()
