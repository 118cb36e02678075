"""The meeting-link contract every provider follows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class MeetingRequest:
    """What a provider needs to make a link for one booking."""

    booking_id: str
    teacher_email: str
    parent_email: str | None
    title: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str

    def __post_init__(self) -> None:
        # A naive datetime would be sent to Google as local time of the server.
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at must be timezone-aware")


@dataclass
class MeetingLink:
    """A link made by a provider; `external_id` is what the provider needs to delete it."""

    url: str
    provider: str
    external_id: str | None = None


class MeetingError(Exception):
    """A provider could not make or delete a link; `code` is short and machine-readable."""

    def __init__(self, message: str, *, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


class RetryableMeetingError(MeetingError):
    """Worth trying again later (outage, rate limit, conference still pending)."""

    def __init__(self, message: str, *, code: str = "retryable", retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentMeetingError(MeetingError):
    """Retrying will not help until someone fixes the configuration (bad request, revoked grant)."""


class MeetingProvider(Protocol):
    """Makes a meeting link for a booking, moves it with the booking, removes it when the booking is cancelled."""

    name: str
    # True when create() calls no one (the link is computed, as Jitsi's): it may then run inside
    # the transaction that confirms the booking, which commits with its link.
    instant: bool

    def create(self, request: MeetingRequest) -> MeetingLink:
        """Return the link for this booking; calling it again for the same booking is safe."""
        ...

    def delete(self, link: MeetingLink) -> None:
        """Remove the meeting behind the link; a meeting already gone is not an error."""
        ...

    def move(self, link: MeetingLink, request: MeetingRequest) -> MeetingLink:
        """Move the meeting behind the link to the request's new time; the link to use after
        (the same one where the provider keeps it). Calling it again for the same time is safe."""
        ...
