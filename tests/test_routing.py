"""The routers' early refusal (tutorbook.api.routing.Router): every path of the app reaches the
route it reached when FastAPI tried every route in turn, for every method (404 and 405 alike)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import BaseRoute, Match, Mount, Route

from tests.conftest import make_settings
from tutorbook.api.routing import Router
from tutorbook.app import create_app

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PARAM = re.compile(r"{([^}:]+)(?::([^}]+))?}")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    var = tmp_path_factory.mktemp("var")
    return create_app(make_settings(f"sqlite:///{var / 'routing.db'}", var))


def _routes(app: Any) -> Iterator[BaseRoute]:
    for entry in app.router.routes:
        yield from getattr(getattr(entry, "original_router", None), "routes", [entry])


def _filled(path: str) -> str:
    def value(m: re.Match[str]) -> str:
        return {"uuid": str(uuid.UUID(int=7)), "path": "a/b.css", "int": "3"}.get(m.group(2) or "", "x-1")

    return _PARAM.sub(value, path)


def _paths(app: Any) -> list[str]:
    """Each route's path filled in, and near misses: a slash more or less, a letter changed or
    added at the end, the path's first segment alone, and paths that are no route's."""
    paths = {"/", "/nothing", "/api", "/api/", "/api/Nothing", "/static", "/static/app.css"}
    for route in _routes(app):
        if isinstance(route, Route | Mount):
            path = _filled(route.path)
            first = "/" + path.strip("/").split("/")[0]
            paths |= {path, path + "/", path.rstrip("/") or "/", path + "x", path[:-1] + "Z", first, first + "/"}
    return sorted(paths)


def _outcome(app: Any, path: str, method: str) -> tuple[str, int, str]:
    """What the app's router picks for the request, as Starlette does: the first route that
    matches fully, else the first that matches but for the method (405), else none (404); and
    inside a router, the route it picks."""
    scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
    partial: tuple[str, int, str] | None = None
    for index, entry in enumerate(app.router.routes):
        match, _ = entry.matches(scope)
        if match == Match.NONE:
            continue
        picked = getattr(entry, "_match", None)
        inner = picked(scope)[2] if picked is not None else entry
        methods = ",".join(sorted(getattr(inner, "methods", None) or []))
        found = (match.name, index, f"{getattr(inner, 'path', '')} {methods}")
        if match == Match.FULL:
            return found
        partial = partial or found
    return partial or ("NONE", -1, "")


def test_every_path_and_method_reaches_the_route_it_reached_without_the_early_refusal(app, monkeypatch):
    requests = [(path, method) for path in _paths(app) for method in METHODS]
    assert len(requests) > 1000
    guarded = {r: _outcome(app, *r) for r in requests}
    monkeypatch.setattr(Router, "guard", False)
    unguarded = {r: _outcome(app, *r) for r in requests}
    assert guarded == unguarded
    # and the requests found routes: the comparison is not of two empty answers
    assert guarded[("/api/Sessions/my-bookings", "GET")][0] == "FULL"
    assert guarded[("/api/Teachers", "GET")][0] == "FULL"
    assert guarded[("/api/Sessions/my-bookings", "PUT")][0] == "PARTIAL"
    assert guarded[("/api/Nothing", "GET")][0] == "NONE"


def test_a_router_refuses_a_path_outside_its_routes_without_trying_them(app, monkeypatch):
    routers = {id(e.original_router): e.original_router for e in app.router.routes if hasattr(e, "original_router")}
    sessions = next(r for r in routers.values() if r.prefix == "/api/Sessions")
    assert isinstance(sessions, Router)
    assert sessions.common_start() == "/api/Sessions/"
    tried: list[object] = []

    def counted(self: object, scope: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
        tried.append(scope)
        return Match.NONE, {}

    monkeypatch.setattr("fastapi.routing.APIRouter.matches", counted)
    scope = {"type": "http", "path": "/api/Teachers", "root_path": "", "method": "GET", "headers": []}
    assert sessions.matches(scope) == (Match.NONE, {})
    assert tried == []
    sessions.matches({**scope, "path": "/api/Sessions/my-bookings"})
    assert len(tried) == 1


def test_a_route_that_is_not_a_plain_path_turns_the_refusal_off():
    router = Router()
    router.add_api_route("/api/One", lambda: None)
    assert router.common_start() == "/api/One"
    router.add_api_route("/api/Two/{x}", lambda: None)
    assert router.common_start() == "/api/"
    router.routes.append(BaseRoute())
    assert router.common_start() == ""
