"""The caller is one dependency (api/deps.py `_Caller`, issue #33): the bearer header, the user's
row and the role check solved as one `Depends` per request, with the 401/403 answers and the
OpenAPI security scheme of the `HTTPBearer` -> `current_user` -> role guard chain it replaced."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from tests.conftest import make_settings
from tests.factories import parent, register
from tutorbook.app import create_app


def _callers(route: APIRoute) -> list:
    return [d for d in route.dependant.dependencies if isinstance(d.call, HTTPBearer)]


def test_every_authenticated_route_solves_its_caller_as_one_dependency_with_nothing_under_it(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path))
    routes = [r for e in app.router.routes for r in getattr(getattr(e, "original_router", None), "routes", [e])]
    authenticated = [r for r in routes if isinstance(r, APIRoute) and _callers(r)]
    assert len(authenticated) > 40  # the app's parent, teacher and admin routes
    for route in authenticated:
        (caller,) = _callers(route)
        assert caller.dependencies == [], route.path  # no HTTPBearer or current_user under it
        assert caller.call.scheme_name == "HTTPBearer", route.path


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwdw==", "Token abc", "Bearer not-a-jwt", "bearer x.y.z"],
)
def test_a_missing_or_bad_bearer_header_is_401_in_the_envelope(c: httpx.Client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/api/Sessions/my-bookings", "/api/Auth/me"):
        r = c.get(path, headers=headers)
        assert r.status_code == 401, (path, authorization, r.text)
        assert r.json()["success"] is False and r.json()["message"]


def test_the_right_role_passes_and_another_is_403_after_its_token_is_checked(c: httpx.Client):
    p, t = parent(c, children=0), register(c, role="Teacher")
    assert p["client"].get("/api/Sessions/my-bookings").status_code == 200
    r = t["client"].get("/api/Sessions/my-bookings")
    assert r.status_code == 403 and r.json()["message"] == "This needs the role Parent"
    r = p["client"].get("/api/Sessions/teacher-schedule")
    assert r.status_code == 403 and r.json()["message"] == "This needs the role Teacher"
    assert t["client"].get("/api/Sessions/teacher-schedule").status_code == 200
    r = p["client"].post("/api/Sessions/not-a-uuid/complete")  # the caller is checked before the path
    assert r.status_code == 403 and "Teacher or Admin" in r.json()["message"]
