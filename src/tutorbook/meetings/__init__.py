"""Meeting links for Confirmed bookings: Jitsi by default, Google Meet when configured."""

from __future__ import annotations

import importlib
from typing import Any

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
    google: dict[str, Any] | None = None,
) -> MeetingProvider:
    """Return the configured provider; `google` holds GoogleMeetProvider's keyword arguments."""
    if provider == "jitsi":
        return JitsiProvider(jitsi_base_url)
    if provider == "google":
        if not google:
            raise ValueError("meeting provider 'google' needs its options (credentials, calendar)")
        # Loaded by name, only when configured: the Google client is an optional extra.
        try:
            google_module = importlib.import_module("tutorbook.meetings.google")
        except ImportError as exc:
            raise ImportError(
                "the Google Meet provider needs the Google client: pip install 'tutorbook[google]'"
            ) from exc
        made: MeetingProvider = google_module.GoogleMeetProvider(**google)
        return made
    raise ValueError(f"unknown meeting provider {provider!r}: expected 'jitsi' or 'google'")
