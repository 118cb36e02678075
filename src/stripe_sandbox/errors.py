"""Stripe-shaped API errors raised by the sandbox."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as Stripe would: status code plus an ``error`` object."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        replayable: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        # Stripe saves no idempotent result for requests refused by validation.
        self.replayable = replayable
        # More fields of the error object (a card error's decline_code, charge, payment_intent,
        # payment_method: https://docs.stripe.com/api/errors).
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe sends for this error: an error with a code links to that code's
        entry on https://docs.stripe.com/error-codes in ``doc_url`` ("Every Error object links
        to this list in its doc_url attribute"), as ``.../error-codes/<code with hyphens>``."""
        error: dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        if self.code:
            error["doc_url"] = doc_url(self.code)
        error.update(self.extra)
        return {"error": error}


def doc_url(code: str) -> str:
    """Where Stripe documents an error code (``parameter_unknown`` -> ``.../parameter-unknown``)."""
    return "https://stripe.com/docs/error-codes/" + code.replace("_", "-")


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 invalid_request_error about the request's parameters (not replayed)."""
    return ApiError(400, "invalid_request_error", message, code=code, param=param, replayable=False)


def conflict(message: str, code: str | None = None, param: str | None = None) -> ApiError:
    """A 400 invalid_request_error about the state of an object (replayed)."""
    return ApiError(400, "invalid_request_error", message, code=code, param=param)


def missing_param(param: str) -> ApiError:
    """Stripe's error for an absent required parameter."""
    return invalid(f"Missing required param: {param}.", param, "parameter_missing")


def unknown_param(param: str) -> ApiError:
    """Stripe's error for a parameter it does not know."""
    return invalid(f"Received unknown parameter: {param}", param, "parameter_unknown")


def no_such(kind: str, object_id: str, param: str = "id", status: int = 404) -> ApiError:
    """Stripe's resource_missing error for an unknown id."""
    return ApiError(
        status,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
        replayable=status != 404,
    )


def api_error(message: str = "An unknown error occurred in the Stripe sandbox.") -> ApiError:
    """A 500 api_error."""
    return ApiError(500, "api_error", message, replayable=False)
