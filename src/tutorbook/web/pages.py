"""Tutorbook's own web pages: server-rendered, no build step, the same services as the API."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tutorbook.web import (
    account_pages,
    admin_office_pages,
    admin_pages,
    booking_pages,
    calendar_pages,
    credit_pages,
    mail_pages,
    payment_pages,
    payout_pages,
    reschedule_pages,
    series_pages,
    settings_pages,
    teacher_pages,
    teacher_setup_pages,
)
from tutorbook.web.core import HERE, error_page

# Paths that belong to the API and the operators; their errors stay JSON.
NOT_PAGES = ("/api/", "/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/static/")


def install(app: FastAPI) -> None:
    """Mount the pages, their static files, and HTML error pages for browsers outside the API."""
    modules = (
        account_pages,
        teacher_pages,
        teacher_setup_pages,
        calendar_pages,
        booking_pages,
        reschedule_pages,
        series_pages,
        payment_pages,
        credit_pages,
        payout_pages,
        mail_pages,
        settings_pages,
        admin_pages,
        admin_office_pages,
    )
    for module in modules:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    json_handler = app.exception_handlers[StarletteHTTPException]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_page(request):
            message = "This page does not exist." if exc.status_code == 404 else "This request cannot be served."
            return error_page(request, exc.status_code, message)
        response = json_handler(request, exc)
        return response if isinstance(response, Response) else await response


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not a script)."""
    path = request.url.path
    return not path.startswith(NOT_PAGES) and "text/html" in request.headers.get("accept", "")
