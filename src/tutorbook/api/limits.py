"""The request body limit: a body larger than TUTORBOOK_MAX_BODY_BYTES is refused with 413
before it is read, whoever reads it (FastAPI's JSON parsing, a page's form). A plain ASGI
middleware, like the app's others."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` inside the route, so the app's handlers answer it: the envelope for
    the API, an error page for a browser's form. Starlette's HTTPException, because FastAPI turns
    anything else raised while it reads the body into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is too large (at most {limit:,} bytes)")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        # Refused at the first read when the declared length is too large (or not a number):
        # not one byte of it is read. Otherwise counted as it arrives (a chunked body has no length).
        refuse_now = declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received, refuse_now
            if refuse_now:
                refuse_now = False  # once: a later wait for the client's disconnect is not a read
                raise BodyTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
