"""The database kernel: the declarative Base and column types (`base`), the engines (`engines`),
the `Database` with its scopes and the read-only session (`database`), the `Coalescer`, and the
hints a use case gives the write door (`doors`)."""

from tutorbook.db.base import NAMING, Base, UTCDateTime, new_id
from tutorbook.db.coalescer import Coalescer
from tutorbook.db.database import Database, ReadOnlySessionError, ReadSession
from tutorbook.db.engines import LOST_RACE_SQLSTATES, TCP_SETTINGS, WriterLock, async_url, lost_race, make_engine

__all__ = [
    "LOST_RACE_SQLSTATES",
    "NAMING",
    "Base",
    "Coalescer",
    "Database",
    "ReadOnlySessionError",
    "ReadSession",
    "TCP_SETTINGS",
    "UTCDateTime",
    "WriterLock",
    "async_url",
    "lost_race",
    "make_engine",
    "new_id",
]
