from datetime import UTC, datetime, timedelta

import pytest

from tutorbook.meetings import (
    JitsiProvider,
    MeetingError,
    MeetingLink,
    PermanentMeetingError,
    RetryableMeetingError,
)
from tutorbook.meetings.policy import create_link, next_attempt_at, plan_after_failure

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeProvider:
    """Answers with a fixed link, or raises the error it was given."""

    name = "fake"

    def __init__(self, error: MeetingError | None = None) -> None:
        self.error = error
        self.calls = 0

    def create(self, request):
        self.calls += 1
        if self.error:
            raise self.error
        return MeetingLink(url="https://meet.example/room", provider=self.name, external_id="e1")

    def delete(self, link):
        pass


def test_backoff_doubles_from_thirty_seconds():
    delays = [(next_attempt_at(attempts=n, now=NOW) - NOW).total_seconds() for n in range(4)]
    assert delays == [30, 60, 120, 240]


def test_backoff_stops_growing_at_the_cap():
    assert next_attempt_at(attempts=7, now=NOW) == NOW + timedelta(hours=1)
    assert next_attempt_at(attempts=10_000, now=NOW) == NOW + timedelta(hours=1)
    assert next_attempt_at(attempts=3, now=NOW, base_s=10, cap_s=50) == NOW + timedelta(seconds=50)


def test_a_retryable_failure_is_retried_later():
    plan = plan_after_failure(error=RetryableMeetingError("boom", code="http_503"), attempts=1, max_failures=5, now=NOW)
    assert (plan.action, plan.code, plan.retry_at) == (
        "retry",
        "http_503",
        NOW + timedelta(seconds=60),
    )


def test_a_retry_after_longer_than_the_backoff_is_respected():
    error = RetryableMeetingError("slow down", code="rate_limited", retry_after=600)
    plan = plan_after_failure(error=error, attempts=0, max_failures=5, now=NOW)
    assert plan.retry_at == NOW + timedelta(seconds=600)


def test_a_permanent_failure_stops_with_its_code():
    error = PermanentMeetingError("revoked", code="invalid_grant")
    plan = plan_after_failure(error=error, attempts=0, max_failures=5, now=NOW)
    assert (plan.action, plan.code, plan.retry_at) == ("stop", "invalid_grant", None)


def test_the_nth_failure_falls_back():
    error = RetryableMeetingError("boom", code="http_500")
    assert plan_after_failure(error=error, attempts=3, max_failures=5, now=NOW).action == "retry"
    assert plan_after_failure(error=error, attempts=4, max_failures=5, now=NOW).action == "fallback"


def test_a_working_primary_gives_its_link_and_leaves_the_count_alone(make_request):
    outcome = create_link(
        primary=FakeProvider(),
        fallback=JitsiProvider(),
        request=make_request(),
        attempts=2,
        max_failures=5,
        now=NOW,
    )
    assert outcome.link.provider == "fake"
    assert (outcome.attempts, outcome.plan, outcome.fell_back) == (2, None, False)


def test_a_failing_primary_below_the_limit_gives_no_link_and_a_retry_time(make_request):
    fallback = FakeProvider()
    outcome = create_link(
        primary=FakeProvider(RetryableMeetingError("down", code="http_503")),
        fallback=fallback,
        request=make_request(),
        attempts=0,
        max_failures=3,
        now=NOW,
    )
    assert outcome.link is None
    assert outcome.attempts == 1
    assert outcome.plan.retry_at == NOW + timedelta(seconds=30)
    assert outcome.error.code == "http_503"
    assert fallback.calls == 0


def test_after_max_failures_the_booking_gets_a_jitsi_link_and_it_is_recorded(make_request):
    outcome = create_link(
        primary=FakeProvider(RetryableMeetingError("down", code="http_503")),
        fallback=JitsiProvider(),
        request=make_request(),
        attempts=2,
        max_failures=3,
        now=NOW,
    )
    assert outcome.fell_back is True
    assert outcome.link.provider == "jitsi"
    assert outcome.link.url.startswith("https://meet.jit.si/Tutorbook-")
    assert (outcome.plan.action, outcome.plan.code, outcome.attempts) == ("fallback", "http_503", 3)


def test_a_permanent_failure_does_not_fall_back_even_at_the_limit(make_request):
    fallback = FakeProvider()
    outcome = create_link(
        primary=FakeProvider(PermanentMeetingError("bad", code="http_400")),
        fallback=fallback,
        request=make_request(),
        attempts=9,
        max_failures=3,
        now=NOW,
    )
    assert outcome.link is None
    assert (outcome.plan.action, outcome.plan.code) == ("stop", "http_400")
    assert fallback.calls == 0


def test_errors_that_are_not_meeting_errors_are_not_swallowed(make_request):
    class Broken(FakeProvider):
        def create(self, request):
            raise KeyError("bug")

    with pytest.raises(KeyError):
        create_link(
            primary=Broken(),
            fallback=JitsiProvider(),
            request=make_request(),
            attempts=0,
            max_failures=3,
            now=NOW,
        )
