"""The wallet's errors."""

from __future__ import annotations

from tutorbook.errors import AppError


class NoCredit(AppError):
    """No usable credit of that teacher and length (409)."""

    status_code = 409
    message = "You have no credit left for this teacher and session length; pay for this lesson instead"


class PackageNotFound(AppError):
    status_code = 404
    message = "Package not found"


class PurchaseNotFound(AppError):
    status_code = 404
    message = "Purchase not found"
