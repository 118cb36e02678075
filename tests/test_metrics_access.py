"""/metrics answers the scraper's token and admins only, in the envelope otherwise, on both databases."""

from __future__ import annotations

import uuid

from tests import factories as f
from tests.support.processes import METRICS_TOKEN
from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import Role
from tutorbook.clock import utc_now


def admin_token(api, c) -> str:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    with api.state.db.session_scope() as s:
        accounts.create_user(
            s,
            hasher=api.state.hasher,
            settings=api.state.settings,
            email=email,
            password=f.PASSWORD,
            full_name="Admin",
            role=Role.ADMIN,
            now=utc_now(),
        )
    return f.login(c, email=email)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_without_a_bearer_token_are_401_in_the_envelope(c):
    for headers in ({}, {"Authorization": METRICS_TOKEN}, {"Authorization": "Basic " + METRICS_TOKEN}):
        r = c.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"success": False, "message": "Authentication required", "data": None}
        assert "tutorbook_bookings" not in r.text


def test_a_wrong_token_is_401_and_a_non_admin_user_is_403(c):
    for token in (METRICS_TOKEN[:-1] + "x", METRICS_TOKEN + "x", "garbage", "\xfc" * 10):
        r = c.get("/metrics", headers={"Authorization": ("Bearer " + token).encode("latin-1")})
        assert r.status_code == 401 and r.json()["success"] is False, token
    for role in ("Parent", "Teacher"):
        r = c.get("/metrics", headers=bearer(f.register(c, role=role)["token"]))
        assert r.status_code == 403 and r.json()["success"] is False
        assert "tutorbook_bookings" not in r.text


def test_the_metrics_token_and_an_admins_token_read_the_metrics(api, c):
    for token in (METRICS_TOKEN, admin_token(api, c)):
        r = c.get("/metrics", headers=bearer(token))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert 'tutorbook_bookings{status="Pending"} 0' in r.text
