"""Meeting links for Confirmed bookings: Jitsi by default, Google Meet when configured."""

from __future__ import annotations

from tutorbook.meetings.base import (
    MeetingError,
    MeetingLink,
    MeetingProvider,
    MeetingRequest,
    PermanentMeetingError,
    RetryableMeetingError,
)
from tutorbook.meetings.jitsi import JitsiProvider

__all__ = [
    "JitsiProvider",
    "MeetingError",
    "MeetingLink",
    "MeetingProvider",
    "MeetingRequest",
    "PermanentMeetingError",
    "RetryableMeetingError",
    "provider_from_config",
]


def provider_from_config(
    *,
    provider: str = "jitsi",
    jitsi_base_url: str = "https://meet.jit.si",
    google: dict | None = None,
) -> MeetingProvider:
    """Return the configured provider; `google` holds GoogleMeetProvider's keyword arguments."""
    if provider == "jitsi":
        return JitsiProvider(jitsi_base_url)
    if provider == "google":
        if not google:
            raise ValueError("meeting provider 'google' needs its options (credentials, calendar)")
        # Imported here so the default install never loads the Google client.
        from tutorbook.meetings.google import GoogleMeetProvider

        return GoogleMeetProvider(**google)
    raise ValueError(f"unknown meeting provider {provider!r}: expected 'jitsi' or 'google'")
