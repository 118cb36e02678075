"""The calendars' API shapes."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from tutorbook.schemas import CamelModel, InputModel, UtcDatetime
from tutorbook.validation import single_line

# A calendar's secret address, as the calendar app gives it.
IcsUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000), AfterValidator(single_line)
]


class CalendarIn(InputModel):
    ics_url: IcsUrl


class CalendarOut(CamelModel):
    id: uuid.UUID
    kind: str
    masked_url: str
    created_at: UtcDatetime
    last_attempt_at: UtcDatetime | None
    last_synced_at: UtcDatetime | None
    last_error: str | None
    busy_ahead: int
    # No good fetch within the staleness limit: its busy periods were dropped and block nothing.
    stale: bool
