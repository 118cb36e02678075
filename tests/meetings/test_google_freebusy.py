"""Teachers' Google calendars' busy times through the Google adapter's free/busy query, against
google-api-python-client's own HTTP mocks with recorded answers: no network."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from tests.meetings.test_google_meet import RaisingHttpMockSequence, api_calls, failed, ok
from tutorbook.meetings import PermanentMeetingError, RetryableMeetingError
from tutorbook.meetings.google import FREEBUSY_SCOPE, TOKEN_URI, GoogleMeetProvider

FREEBUSY_URI = "https://www.googleapis.com/calendar/v3/freeBusy"
TOKEN_OK = ({"status": "200"}, json.dumps({"access_token": "ya29.freebusy", "expires_in": 3600}))
START = datetime(2030, 1, 7, 0, 0, tzinfo=UTC)


def provider(responses: list):
    http = RaisingHttpMockSequence([TOKEN_OK, *responses])
    made = GoogleMeetProvider(
        credentials_mode="oauth",
        oauth_client_id="client-id",
        oauth_client_secret="client-secret",
        refresh_token_for={"teacher@school.org": "1//refresh"}.get,
        http=http,
    )
    return made, http


# What Google answered (recorded): one calendar with two busy periods, times in UTC with Z.
ANSWER = {
    "kind": "calendar#freeBusy",
    "timeMin": "2030-01-07T00:00:00.000Z",
    "timeMax": "2030-01-14T00:00:00.000Z",
    "calendars": {
        "teacher@school.org": {
            "busy": [
                {"start": "2030-01-07T09:00:00Z", "end": "2030-01-07T10:00:00Z"},
                {"start": "2030-01-08T14:30:00+01:00", "end": "2030-01-08T15:00:00+01:00"},
            ]
        }
    },
}


def test_busy_times_are_read_with_the_free_busy_scope_and_only_times_come_back():
    google, http = provider([ok(ANSWER)])
    busy = google.busy(
        teacher_email="teacher@school.org",
        calendar_ids=["teacher@school.org"],
        start=START,
        end=START + timedelta(days=7),
    )
    assert busy == [
        (datetime(2030, 1, 7, 9, tzinfo=UTC), datetime(2030, 1, 7, 10, tzinfo=UTC)),
        (datetime(2030, 1, 8, 13, 30, tzinfo=UTC), datetime(2030, 1, 8, 14, tzinfo=UTC)),
    ]
    token_uri, _, token_body, _ = http.request_sequence[0]
    assert token_uri == TOKEN_URI and parse_qs(token_body.decode())["scope"] == [FREEBUSY_SCOPE]
    [(uri, method, body, headers)] = api_calls(http)
    assert (uri.split("?")[0], method) == (FREEBUSY_URI, "POST")
    assert headers["authorization"] == "Bearer ya29.freebusy"
    assert json.loads(body) == {
        "timeMin": "2030-01-07T00:00:00+00:00",
        "timeMax": "2030-01-14T00:00:00+00:00",
        "items": [{"id": "teacher@school.org"}],
    }


def test_a_long_range_is_asked_in_pieces_google_accepts():
    empty = {"calendars": {"primary": {"busy": []}}}
    google, http = provider([ok(empty), ok(empty), ok(empty)])
    google.busy(
        teacher_email="teacher@school.org", calendar_ids=["primary"], start=START, end=START + timedelta(days=120)
    )
    ranges = [(json.loads(b)["timeMin"], json.loads(b)["timeMax"]) for _, _, b, _ in api_calls(http)]
    assert ranges == [
        ("2030-01-07T00:00:00+00:00", "2030-03-04T00:00:00+00:00"),
        ("2030-03-04T00:00:00+00:00", "2030-04-29T00:00:00+00:00"),
        ("2030-04-29T00:00:00+00:00", "2030-05-07T00:00:00+00:00"),
    ]


def test_a_calendar_google_cannot_read_is_an_error_naming_it():
    answer = {"calendars": {"someone@else.org": {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}}}
    google, _ = provider([ok(answer)])
    with pytest.raises(PermanentMeetingError, match="cannot read someone@else.org .notFound."):
        google.busy(
            teacher_email="teacher@school.org",
            calendar_ids=["someone@else.org"],
            start=START,
            end=START + timedelta(days=1),
        )


def test_google_being_down_is_retryable_and_a_refusal_is_not():
    google, _ = provider([failed(503, "backendError")])
    with pytest.raises(RetryableMeetingError):
        google.busy(
            teacher_email="teacher@school.org", calendar_ids=["primary"], start=START, end=START + timedelta(days=1)
        )
    google, _ = provider([failed(403, "forbidden")])
    with pytest.raises(PermanentMeetingError):
        google.busy(
            teacher_email="teacher@school.org", calendar_ids=["primary"], start=START, end=START + timedelta(days=1)
        )
