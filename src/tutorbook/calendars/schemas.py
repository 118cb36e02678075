"""The calendars' API shapes."""

from __future__ import annotations

import uuid
from typing import Annotated, Self

from pydantic import AfterValidator, StringConstraints, model_validator

from tutorbook.schemas import CamelModel, InputModel, UtcDatetime
from tutorbook.validation import single_line

# A calendar's secret address, as the calendar app gives it.
IcsUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000), AfterValidator(single_line)
]


# A Google calendar's id: "primary" or the calendar's address.
GoogleCalendarId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), AfterValidator(single_line)
]


class CalendarIn(InputModel):
    """One of the two: a secret iCal address, or a Google calendar's id (read through Google's
    free/busy, where the site has the Google adapter set up)."""

    ics_url: IcsUrl | None = None
    google_calendar_id: GoogleCalendarId | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.ics_url is None) == (self.google_calendar_id is None):
            raise ValueError("give icsUrl or googleCalendarId")
        return self


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
