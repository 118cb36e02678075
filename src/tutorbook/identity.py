"""Who is acting: the caller's role and identity, free of any web framework.

Use cases take an `AuthUser`; how it was authenticated (bearer token, page cookie) is the
business of `tutorbook.api.deps` and `tutorbook.web.core`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """A user's role: the `users.role` column, the token's `role` claim and the API's `role`."""

    PARENT = "Parent"
    TEACHER = "Teacher"
    ADMIN = "Admin"


@dataclass(frozen=True)
class AuthUser:
    id: uuid.UUID
    role: Role
    email: str
    full_name: str
    time_zone: str

    def __post_init__(self) -> None:
        # Read from a str column or a token's claim: held as the Role whatever it came as.
        if type(self.role) is not Role:
            object.__setattr__(self, "role", Role(self.role))

    @property
    def actor(self) -> str:
        """How the booking history names this user."""
        return f"user:{self.id}"
