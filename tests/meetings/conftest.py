from datetime import UTC, datetime, timedelta

import pytest

from tutorbook.meetings import MeetingRequest


def meeting_request(*, booking_id: str = "bk_1", parent_email: str | None = "parent@example.com") -> MeetingRequest:
    starts_at = datetime(2030, 1, 7, 15, 0, tzinfo=UTC)
    return MeetingRequest(
        booking_id=booking_id,
        teacher_email="teacher@school.org",
        parent_email=parent_email,
        title="Maths with Ada",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        time_zone="Europe/Paris",
    )


@pytest.fixture
def make_request():
    """A factory of MeetingRequests with keyword-only overrides."""
    return meeting_request
