"""App variants for what-if probes (uvicorn --factory); never used by the app itself.

`request_id_asgi()`: the app exactly as `tutorbook.asgi` builds it, except that the request-id
middleware (a `BaseHTTPMiddleware` from `@app.middleware("http")` in tutorbook/app.py) is
replaced by a plain ASGI middleware doing the same: read or make the request id, set the
context variable, add `X-Request-ID`, log the request line at INFO.
"""

from __future__ import annotations

import logging
import time

from starlette.middleware.base import BaseHTTPMiddleware

from tutorbook.logs import new_request_id, request_id_var

log = logging.getLogger("tutorbook.http")


class RequestIdASGI:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = new_request_id(given)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            if log.isEnabledFor(logging.INFO):
                log.info("request", extra={"method": scope["method"], "path": scope["path"], "status": status,
                                            "ms": round((time.perf_counter() - started) * 1000, 1)})
        finally:
            request_id_var.reset(token)


def request_id_asgi():
    from tutorbook.asgi import app

    app.user_middleware = [m for m in app.user_middleware if m.cls is not BaseHTTPMiddleware]
    app.middleware_stack = None
    app.add_middleware(RequestIdASGI)
    return app
