"""The default provider: a Jitsi Meet room with an unguessable name, no credentials needed."""

from __future__ import annotations

import secrets

from tutorbook.meetings.base import MeetingLink, MeetingRequest

ROOM_PREFIX = "Tutorbook-"


def room_name() -> str:
    """Return a fresh room name with 128 random bits."""
    # Hex, not base64: Jitsi treats room names case-insensitively, so mixed case adds no entropy,
    # and hex is safe in every Jitsi deployment's room-name rules.
    return ROOM_PREFIX + secrets.token_hex(16)


class JitsiProvider:
    """Links of the form `<base_url>/<room>`; the room exists as soon as someone joins it."""

    name = "jitsi"
    instant = True  # a room name made here: no call to anyone

    def __init__(self, base_url: str = "https://meet.jit.si") -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"Jitsi base URL must start with https:// or http://: {base_url!r}")
        self.base_url = base_url.rstrip("/")

    def create(self, request: MeetingRequest) -> MeetingLink:
        """Return a link to a new random room (no outside call, so repeating it is harmless)."""
        return MeetingLink(url=f"{self.base_url}/{room_name()}", provider=self.name)

    def delete(self, link: MeetingLink) -> None:
        """Do nothing: a Jitsi room disappears when its last participant leaves."""

    def move(self, link: MeetingLink, request: MeetingRequest) -> MeetingLink:
        """The room stays: a Jitsi room has no time of its own."""
        return link
