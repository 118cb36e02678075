"""The app's routers: FastAPI's APIRouter, which turns a request whose path none of its routes can
match away at once, by the routes' common static start, instead of trying each of them.

FastAPI (0.16x) keeps each included router as one entry of the app's route list and tries every
route of every router in turn until one matches, at about 20 Python calls a route (a regular
expression and the scope's bookkeeping around it). A request for the Teachers' list was tried
against the 22 routes of the six routers before it, My Bookings against 38, a page against over
a hundred (issue #33: docs/PERFORMANCE.md, section 9). A route's regular expression matches only
paths that begin with its path's text before the first `{`; so a path that does not begin with
what all of a router's routes begin with matches none of them, and the router answers "no match"
at once, as trying each of them would have. The order routes are tried in, and so which route
answers, is unchanged (tests/test_routing.py checks every route of the app both ways).

The routers are included without a prefix of their own (`app.include_router(router)`): their
routes' paths are the paths requests use. A router with a route whose path is not plain text
(none here) is never cut short."""

from __future__ import annotations

import os.path
from typing import Any, ClassVar

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope


class Router(APIRouter):
    """APIRouter, but a path that none of its routes can match is refused without trying each."""

    guard: ClassVar[bool] = True  # off: FastAPI's own scan alone (the tests compare the two)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: tuple[int, int, str] | None = None  # (routes, id of the last, their common start)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.guard and not get_route_path(scope).startswith(self.common_start()):
            return Match.NONE, {}
        return super().matches(scope)

    def common_start(self) -> str:
        """The text every route's path begins with (before its first parameter); "" when a route
        is not a plain path (then every request is tried against the routes)."""
        routes = self.routes
        key = (len(routes), id(routes[-1]) if routes else 0)
        if self._start is None or self._start[:2] != key:
            self._start = (*key, _common_start(routes))
        return self._start[2]


def _common_start(routes: list[BaseRoute]) -> str:
    starts = []
    for route in routes:
        if not isinstance(route, Route | Mount) or getattr(route, "host", None):
            return ""
        starts.append(route.path.split("{", 1)[0])
    return os.path.commonprefix(starts) if starts else ""
