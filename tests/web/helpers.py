"""A cookie-keeping httpx client that uses the pages as a browser would (forms with CSRF tokens)."""

from __future__ import annotations

import html
import re
import uuid

import httpx

from tests import factories as f
from tests.support.servers import http_client
from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import Role
from tutorbook.clock import utc_now

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# What must never reach a page: the seed's "Unknown" status, or a server's insides.
FORBIDDEN_TEXT = ("Unknown", "Traceback", "Internal Server Error", "sqlalchemy", 'File "')


class WebClient:
    def __init__(self, base_url: str):
        self.http = http_client(base_url=base_url, timeout=30, headers={"Accept": "text/html"})
        self.token: str | None = None

    def get(self, path: str, **kwargs) -> httpx.Response:
        r = self.http.get(path, **kwargs)
        if match := CSRF.search(r.text):
            self.token = match.group(1)
        return r

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True) -> httpx.Response:
        if csrf and self.token is None:
            self.get("/login")
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.token
        return self.http.post(path, data=form)

    def login(self, email: str, password: str = f.PASSWORD) -> httpx.Response:
        r = self.post("/login", {"email": email, "password": password})
        assert r.status_code == 303, r.text
        return r

    def close(self) -> None:
        self.http.close()


def text_of(r: httpx.Response) -> str:
    """The page's visible-ish text: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", r.text)).split())


def assert_clean(r: httpx.Response) -> None:
    """A page, never JSON or a stack trace, and never the word "Unknown"."""
    assert r.headers["content-type"].startswith("text/html"), r.text[:200]
    for word in FORBIDDEN_TEXT:
        assert word not in r.text, f"{word!r} on {r.request.url}"


def move_into_past(db, booking_id: str, *, hours: int = 2) -> None:
    """Shift a booking so it started `hours` ago and has ended: the app has no clock to set, so
    tests that need a finished session rewrite its times in the database."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from tutorbook.bookings.models import Booking

    now = datetime.now(UTC)
    with db.session_scope() as s:
        s.execute(
            sa.update(Booking)
            .where(Booking.id == uuid.UUID(booking_id))
            .values(starts_at=now - timedelta(hours=hours), ends_at=now - timedelta(hours=hours - 1))
        )


def make_admin(api, *, full_name: str = "Ada Admin") -> dict:
    """An admin account (as `tutorbook create-admin` makes one): {"email", "id"}."""
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    with api.state.db.session_scope() as s:
        user = accounts.create_user(
            s,
            hasher=api.state.hasher,
            settings=api.state.settings,
            email=email,
            password=f.PASSWORD,
            full_name=full_name,
            role=Role.ADMIN,
            now=utc_now(),
        )
        return {"email": email, "id": str(user.id)}
