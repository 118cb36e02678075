"""/settings: the reminders, the emails' language and the calendar feed, which the API alone
offered before, on a page (forms with CSRF, no JavaScript)."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa

from tests import factories as f
from tests.support.servers import http_client
from tests.web.helpers import WebClient, assert_clean, text_of
from tutorbook.accounts.models import User


def user_row(api, user_id: str) -> User:
    with api.state.db.session_scope() as s:
        user = s.get(User, uuid.UUID(user_id))
        s.expunge(user)
        return user


def test_a_parent_turns_reminders_off_and_chooses_the_emails_language(api, c):
    p = f.parent(c)
    web = WebClient(api.state.base_url)
    web.login(p["email"])
    page = web.get("/settings")
    assert page.status_code == 200 and 'name="reminders"' in page.text and " checked" in page.text
    assert_clean(page)
    r = web.post("/settings", {"locale": "en_US"})  # the checkbox not sent: off
    assert r.status_code == 303
    assert "Settings saved." in text_of(web.get("/settings"))
    row = user_row(api, p["user"]["id"])
    assert row.reminders_opt_out is True and row.locale == "en_US"
    assert p["client"].get("/api/Notifications/settings").json()["data"]["reminders"] is False
    web.post("/settings", {"locale": "de_DE", "reminders": "on"})
    row = user_row(api, p["user"]["id"])
    assert row.reminders_opt_out is False and row.locale == "de_DE"
    r = web.post("/settings", {"locale": "xx_NOPE", "reminders": "on"})
    assert "Choose a language from the list." in text_of(web.get(r.headers["location"]))
    assert user_row(api, p["user"]["id"]).locale == "de_DE"
    web.close()


def test_a_teacher_makes_renews_and_ends_the_calendar_feed(api, c):
    t = f.teacher(c)
    web = WebClient(api.state.base_url)
    web.login(t["email"])
    assert "You have no calendar address." in text_of(web.get("/settings"))
    page = web.post("/settings/calendar-feed")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    first = re.search(r'id="feed-url" readonly value="([^"]+)"', page.text).group(1)
    with http_client(base_url=api.state.base_url, timeout=30) as anon:
        path = first.split("://", 1)[1].split("/", 1)[1]
        assert anon.get(f"/{path}").status_code == 200
        assert "You have a calendar address" in text_of(web.get("/settings"))
        second = re.search(r'id="feed-url" readonly value="([^"]+)"', web.post("/settings/calendar-feed").text).group(1)
        assert second != first and anon.get(f"/{path}").status_code == 404  # the old one ended
        r = web.post("/settings/calendar-feed/delete")
        assert r.status_code == 303
        assert anon.get("/" + second.split("://", 1)[1].split("/", 1)[1]).status_code == 404
    assert "You have no calendar address." in text_of(web.get("/settings"))
    web.close()


def test_settings_need_a_login_and_the_csrf_token(api, c):
    web = WebClient(api.state.base_url)
    r = web.get("/settings")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    p = f.parent(c)
    web.login(p["email"])
    assert web.post("/settings", {"locale": "en_US"}, csrf=False).status_code == 403
    assert web.post("/settings/calendar-feed", csrf=False).status_code == 403
    with api.state.db.session_scope() as s:
        assert s.scalar(sa.select(User.calendar_token_hash).where(User.email == p["email"])) is None
    web.close()
