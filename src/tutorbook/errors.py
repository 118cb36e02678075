"""The domain's errors: AppError (carrying its HTTP status) and its kinds, and the envelope's
shape. No web framework here: the handlers that render these as responses are
`tutorbook.api.errors`, installed where the app is built."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A business error with its HTTP status; rendered in the envelope."""

    status_code = 400
    message = "Bad request"

    def __init__(self, message: str | None = None, *, data: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.data = data
        self.headers = headers


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401
    message = "Authentication required"


class Forbidden(AppError):
    status_code = 403
    message = "You are not allowed to do this"


class NotFound(AppError):
    status_code = 404
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    message = "Conflict"


class Unprocessable(AppError):
    status_code = 422
    message = "Invalid input"


class TooManyRequests(AppError):
    status_code = 429
    message = "Too many attempts; try again later"


class ServiceUnavailable(AppError):
    """Busy: a bounded wait ran out. `cause` names the wait (for the log line and the metric,
    never the answer): `db_async_slot`, `db_sync_slot`, `sqlite_writer`, ... (tutorbook.api.errors)."""

    status_code = 503
    message = "The service is busy; try again in a moment"

    def __init__(self, message: str | None = None, *, cause: str = "busy", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.cause = cause


class BadGateway(AppError):
    status_code = 502
    message = "The payment provider could not be reached; nothing was charged"


class GatewayTimeout(AppError):
    status_code = 504
    message = "The payment provider did not answer in time; nothing was charged"


def envelope(data: Any = None, message: str = "OK", success: bool = True) -> dict[str, Any]:
    """The response body every route returns."""
    return {"success": success, "message": message, "data": data}
