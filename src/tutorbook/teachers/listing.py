"""The public teacher list, kept per process until a teacher changes (issue #33).

The list was rebuilt from ORM objects on every request (about 6 ms, a quarter of the app's
Python time under the parents' mix). Now a request reads the `teachers` version counter
(`tutorbook.versions`, moved by every change the list shows) and rebuilds only when it moved;
the answers made from one version (by filter and page) are kept with it, rendered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from tutorbook.teachers.schemas import TeacherOut
from tutorbook.teachers.service import list_teachers
from tutorbook.versions import TEACHERS, read

MAX_RENDERED = 256  # rendered answers kept per version (filters x pages)


@dataclass
class Listing:
    """One version of the list, in order (name, id), and answers rendered from it by query."""

    version: int
    teachers: list[TeacherOut]
    rendered: dict[Any, bytes] = field(default_factory=dict)

    def render(self, key: Any, make: Callable[[], bytes]) -> bytes:
        """The answer for `key`, made once per version (at most MAX_RENDERED kept)."""
        found = self.rendered.get(key)
        if found is None:
            found = make()
            if len(self.rendered) < MAX_RENDERED:
                self.rendered[key] = found
        return found


class ListCache:
    """The last version of the list this process read."""

    def __init__(self) -> None:
        self._current: Listing | None = None
        self._lock = threading.Lock()

    def current(self, session: Session) -> Listing:
        """The list as of now: one read of the version, the list rebuilt only when it moved."""
        version = read(session, [TEACHERS])[TEACHERS]
        with self._lock:
            found = self._current
        if found is not None and found.version == version:
            return found
        # The version was read first: the rows read now are at least as new as it says.
        fresh = Listing(version, list_teachers(session))
        with self._lock:
            if self._current is None or self._current.version <= version:
                self._current = fresh
        return fresh
