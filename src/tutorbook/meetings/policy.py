"""What the meeting-links job does after a provider fails: pure functions, no database.

The booking's status is never touched here: a paid booking stays Confirmed whatever the
provider does; only its link is retried, stopped or replaced by the fallback provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tutorbook.meetings.base import (
    MeetingError,
    MeetingLink,
    MeetingProvider,
    MeetingRequest,
    PermanentMeetingError,
    RetryableMeetingError,
)

Action = Literal["retry", "stop", "fallback"]


@dataclass(frozen=True)
class FailurePlan:
    """Retry at `retry_at`, stop for good (an admin must act), or use the fallback provider."""

    action: Action
    code: str
    retry_at: datetime | None = None


@dataclass(frozen=True)
class LinkOutcome:
    """The result of one attempt; `attempts` is the primary's failure count to store."""

    link: MeetingLink | None
    attempts: int
    plan: FailurePlan | None = None
    error: MeetingError | None = None
    fell_back: bool = False


def next_attempt_at(*, attempts: int, now: datetime, base_s: float = 30, cap_s: float = 3600) -> datetime:
    """Return when to try again after `attempts` earlier failures: base * 2**attempts, capped."""
    delay = min(cap_s, base_s * 2 ** min(max(attempts, 0), 32))
    return now + timedelta(seconds=delay)


def plan_after_failure(*, error: MeetingError, attempts: int, max_failures: int, now: datetime) -> FailurePlan:
    """Decide what follows a failure, `attempts` being the failures recorded before this one."""
    if isinstance(error, PermanentMeetingError):
        return FailurePlan(action="stop", code=error.code)
    if attempts + 1 >= max_failures:
        return FailurePlan(action="fallback", code=error.code)
    retry_at = next_attempt_at(attempts=attempts, now=now)
    if isinstance(error, RetryableMeetingError) and error.retry_after:
        retry_at = max(retry_at, now + timedelta(seconds=error.retry_after))
    return FailurePlan(action="retry", code=error.code, retry_at=retry_at)


def create_link(
    *,
    primary: MeetingProvider,
    fallback: MeetingProvider,
    request: MeetingRequest,
    attempts: int,
    max_failures: int,
    now: datetime,
) -> LinkOutcome:
    """Try the primary provider; on failure plan what is next and use the fallback if it says so."""
    try:
        return LinkOutcome(link=primary.create(request), attempts=attempts)
    except MeetingError as exc:
        error = exc
    plan = plan_after_failure(error=error, attempts=attempts, max_failures=max_failures, now=now)
    # The fallback (Jitsi) makes no outside call, so it is not expected to fail.
    link = fallback.create(request) if plan.action == "fallback" else None
    return LinkOutcome(link=link, attempts=attempts + 1, plan=plan, error=error, fell_back=link is not None)
