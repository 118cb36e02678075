"""Who is acting: the caller's role and identity, free of any web framework.

Use cases take an `AuthUser`; how it was authenticated (bearer token, page cookie) is the
business of `tutorbook.api.deps` and `tutorbook.web.core`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    PARENT = "Parent"
    TEACHER = "Teacher"
    ADMIN = "Admin"


@dataclass(frozen=True)
class AuthUser:
    id: uuid.UUID
    role: str
    email: str
    full_name: str
    time_zone: str

    @property
    def actor(self) -> str:
        """How the booking history names this user."""
        return f"user:{self.id}"
