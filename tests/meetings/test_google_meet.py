"""The Google Meet adapter against google-api-python-client's own HTTP mocks: no network, no sleep.

Every test goes through the real client (static discovery document, google-auth credentials,
google_auth_httplib2) and asserts on the requests `HttpMockSequence.request_sequence` recorded.
"""

import base64
import dataclasses
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httplib2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from googleapiclient.http import HttpMockSequence

from tutorbook.meetings import MeetingLink, PermanentMeetingError, RetryableMeetingError
from tutorbook.meetings.google import SCOPE, TOKEN_URI, GoogleMeetProvider, stable_id

EVENTS_URI = "https://www.googleapis.com/calendar/v3/calendars/teacher%40school.org/events"
MEET_URL = "https://meet.google.com/abc-defg-hij"
TOKEN_OK = ({"status": "200"}, json.dumps({"access_token": "ya29.test", "expires_in": 3600}))


def ok(body: dict) -> tuple[dict, str]:
    return {"status": "200"}, json.dumps(body)


def failed(status: int, reason: str = "", *, headers: dict | None = None) -> tuple[dict, str]:
    errors = [{"domain": "global", "reason": reason, "message": reason}] if reason else []
    body = {"error": {"code": status, "message": f"error {reason}", "errors": errors}}
    return {"status": str(status), **(headers or {})}, json.dumps(body)


def meet_event(booking_id: str = "bk_1", *, status: str = "success", video: bool = True, hangout: bool = True) -> dict:
    conference: dict = {"createRequest": {"status": {"statusCode": status}}}
    event: dict = {"id": stable_id(booking_id), "status": "confirmed", "conferenceData": conference}
    if status == "success" and video:
        conference["entryPoints"] = [
            {"entryPointType": "phone", "uri": "tel:+1-555-0100"},
            {"entryPointType": "video", "uri": MEET_URL},
        ]
    if status == "success" and hangout:
        event["hangoutLink"] = MEET_URL + "?from=hangoutLink"
    return event


class RaisingHttpMockSequence(HttpMockSequence):
    """HttpMockSequence that raises an exception given in place of a response."""

    def request(self, uri, method="GET", body=None, headers=None, **kwargs):
        if isinstance(self._iterable[0], Exception):
            self.request_sequence.append((uri, method, body, headers))
            raise self._iterable.pop(0)
        return super().request(uri, method, body, headers, **kwargs)


def oauth_provider(
    responses: list, *, token: tuple = TOKEN_OK, **options
) -> tuple[GoogleMeetProvider, HttpMockSequence]:
    """A provider using a teacher's refresh token; the mock answers the token request first."""
    http = RaisingHttpMockSequence([token, *responses])
    settings = {
        "credentials_mode": "oauth",
        "oauth_client_id": "client-id",
        "oauth_client_secret": "client-secret",
        "refresh_token_for": {"teacher@school.org": "1//refresh"}.get,
        "poll_delays": (1, 2),
        "sleep": lambda seconds: None,
        "http": http,
        **options,
    }
    return GoogleMeetProvider(**settings), http


def api_calls(http: HttpMockSequence) -> list[tuple]:
    return [call for call in http.request_sequence if not call[0].startswith(TOKEN_URI)]


def query(uri: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(uri).query)


# -- creating the event and reading the link ---------------------------------------------------


def test_insert_returns_the_link_of_the_video_entry_point(make_request):
    provider, _ = oauth_provider([ok(meet_event())])
    link = provider.create(make_request())
    assert link == MeetingLink(
        url=MEET_URL,
        provider="google",
        external_id=f"{stable_id('bk_1')} teacher@school.org teacher@school.org",
    )


def test_hangout_link_is_used_when_there_are_no_entry_points(make_request):
    provider, _ = oauth_provider([ok(meet_event(video=False))])
    assert provider.create(make_request()).url == MEET_URL + "?from=hangoutLink"


def test_the_insert_request_is_exactly_what_google_expects(make_request):
    provider, http = oauth_provider([ok(meet_event())])
    provider.create(make_request())

    [(uri, method, body, headers)] = api_calls(http)
    assert method == "POST"
    assert uri.split("?")[0] == EVENTS_URI
    assert query(uri) == {"conferenceDataVersion": ["1"], "sendUpdates": ["none"], "alt": ["json"]}
    assert headers["authorization"] == "Bearer ya29.test"
    assert json.loads(body) == {
        "id": stable_id("bk_1"),
        "summary": "Maths with Ada",
        "start": {"dateTime": "2030-01-07T15:00:00+00:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2030-01-07T16:00:00+00:00", "timeZone": "Europe/Paris"},
        "conferenceData": {
            "createRequest": {
                "requestId": stable_id("bk_1"),
                "conferenceSolutionKey": {"type": "hangoutsMeet"},
            }
        },
        "extendedProperties": {"private": {"tutorbookBookingId": "bk_1"}},
    }


def test_the_token_request_uses_the_teachers_refresh_token_and_the_calendar_events_scope(
    make_request,
):
    provider, http = oauth_provider([ok(meet_event())])
    provider.create(make_request())

    uri, method, body, _ = http.request_sequence[0]
    assert (uri, method) == (TOKEN_URI, "POST")
    assert parse_qs(body.decode()) == {
        "grant_type": ["refresh_token"],
        "client_id": ["client-id"],
        "client_secret": ["client-secret"],
        "refresh_token": ["1//refresh"],
        "scope": [SCOPE],
    }


def test_the_request_id_is_the_same_for_every_attempt_at_the_same_booking(make_request):
    first, first_http = oauth_provider([ok(meet_event())])
    second, second_http = oauth_provider([ok(meet_event())])
    first.create(make_request())
    second.create(make_request())

    def request_id(http):
        return json.loads(api_calls(http)[0][2])["conferenceData"]["createRequest"]["requestId"]

    assert request_id(first_http) == request_id(second_http) == stable_id("bk_1")
    assert stable_id("bk_2") != stable_id("bk_1")
    assert all(c in "0123456789abcdefghijklmnopqrstuv" for c in stable_id("bk_1"))


def test_a_retry_after_the_event_was_created_reuses_it_instead_of_making_a_second_meeting(
    make_request,
):
    provider, http = oauth_provider([failed(409, "duplicate"), ok(meet_event())])
    assert provider.create(make_request()).url == MEET_URL
    [insert, get] = api_calls(http)
    assert insert[1] == "POST"
    assert get[1] == "GET"
    assert get[0].split("?")[0] == f"{EVENTS_URI}/{stable_id('bk_1')}"


def test_the_parent_is_invited_only_when_invites_are_configured(make_request):
    silent, silent_http = oauth_provider([ok(meet_event())])
    inviting, inviting_http = oauth_provider([ok(meet_event())], send_attendee_invites=True)
    silent.create(make_request())
    inviting.create(make_request())

    [(_, _, silent_body, _)] = api_calls(silent_http)
    [(inviting_uri, _, inviting_body, _)] = api_calls(inviting_http)
    assert "attendees" not in json.loads(silent_body)
    assert json.loads(inviting_body)["attendees"] == [{"email": "parent@example.com"}]
    assert query(inviting_uri)["sendUpdates"] == ["all"]


def test_no_attendee_is_sent_when_the_booking_has_no_parent_email(make_request):
    provider, http = oauth_provider([ok(meet_event())], send_attendee_invites=True)
    provider.create(make_request(parent_email=None))
    assert "attendees" not in json.loads(api_calls(http)[0][2])


def test_a_configured_calendar_id_replaces_the_teachers_primary_calendar(make_request):
    provider, http = oauth_provider([ok(meet_event())], calendar_id="tutoring@group.calendar.google.com")
    link = provider.create(make_request())
    assert api_calls(http)[0][0].startswith(
        "https://www.googleapis.com/calendar/v3/calendars/tutoring%40group.calendar.google.com/events?"
    )
    assert link.external_id.split(" ")[1] == "tutoring@group.calendar.google.com"


def test_a_calendar_resolver_picks_the_calendar_per_teacher(make_request):
    provider, http = oauth_provider([ok(meet_event())], calendar_id_for=lambda email: "c_42")
    provider.create(make_request())
    assert "/calendars/c_42/events?" in api_calls(http)[0][0]


# -- the conference is created asynchronously ---------------------------------------------------


def test_a_pending_conference_is_polled_with_backoff_until_it_has_a_link(make_request):
    sleeps: list[float] = []
    provider, http = oauth_provider(
        [ok(meet_event(status="pending")), ok(meet_event(status="pending")), ok(meet_event())],
        sleep=sleeps.append,
    )
    assert provider.create(make_request()).url == MEET_URL
    assert sleeps == [1, 2]
    insert, *polls = api_calls(http)
    assert [call[1] for call in polls] == ["GET", "GET"]
    assert all(call[0].split("?")[0] == f"{EVENTS_URI}/{stable_id('bk_1')}" for call in polls)


def test_a_conference_still_pending_after_the_last_poll_is_retried_later(make_request):
    provider, http = oauth_provider([ok(meet_event(status="pending"))] * 3)
    with pytest.raises(RetryableMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "conference_pending"
    assert len(api_calls(http)) == 3


def test_an_event_cancelled_in_google_is_not_reused(make_request):
    cancelled = {**meet_event(), "status": "cancelled"}
    provider, _ = oauth_provider([failed(409, "duplicate"), ok(cancelled)])
    with pytest.raises(PermanentMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "event_cancelled"


def test_a_failed_conference_is_a_permanent_error(make_request):
    provider, _ = oauth_provider([ok(meet_event(status="pending")), ok(meet_event(status="failure"))])
    with pytest.raises(PermanentMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "conference_failed"


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (failed(500, "backendError"), "http_500"),
        (failed(503), "http_503"),
        (failed(429, "rateLimitExceeded"), "rate_limited"),
        (failed(403, "rateLimitExceeded"), "rate_limited"),
        (failed(403, "userRateLimitExceeded"), "rate_limited"),
    ],
)
def test_outages_and_rate_limits_are_retryable(make_request, response, code):
    provider, _ = oauth_provider([response])
    with pytest.raises(RetryableMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == code


def test_a_retry_after_header_is_passed_on(make_request):
    provider, _ = oauth_provider([failed(429, "rateLimitExceeded", headers={"retry-after": "120"})])
    with pytest.raises(RetryableMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.retry_after == 120


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (failed(400, "invalid"), "http_400"),
        (failed(403, "requiredAccessLevel"), "http_403"),
        (failed(404, "notFound"), "http_404"),
    ],
)
def test_bad_requests_and_missing_rights_are_permanent(make_request, response, code):
    provider, _ = oauth_provider([response])
    with pytest.raises(PermanentMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == code


def test_a_401_is_permanent_after_google_auth_refreshed_the_token_twice(make_request):
    unauthorized = failed(401, "authError")
    provider, http = oauth_provider([unauthorized, TOKEN_OK, unauthorized, TOKEN_OK, unauthorized])
    with pytest.raises(PermanentMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "http_401"
    assert [call[0] for call in http.request_sequence].count(TOKEN_URI) == 3
    assert len(api_calls(http)) == 3


def test_a_revoked_refresh_token_is_a_permanent_invalid_grant(make_request):
    revoked = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    provider, http = oauth_provider([], token=({"status": "400"}, json.dumps(revoked)))
    with pytest.raises(PermanentMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "invalid_grant"
    assert api_calls(http) == []


def test_a_teacher_without_a_refresh_token_is_permanent_and_nothing_is_sent(make_request):
    provider, http = oauth_provider([], refresh_token_for=lambda email: None)
    with pytest.raises(PermanentMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "no_refresh_token"
    assert http.request_sequence == []


def test_an_unreachable_google_is_retryable(make_request):
    provider, _ = oauth_provider([httplib2.ServerNotFoundError("www.googleapis.com")])
    with pytest.raises(RetryableMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "network"


# -- cancellation -------------------------------------------------------------------------------


def a_google_link() -> MeetingLink:
    external_id = f"{stable_id('bk_1')} teacher@school.org teacher@school.org"
    return MeetingLink(url=MEET_URL, provider="google", external_id=external_id)


def test_delete_sends_delete_for_the_event_on_the_teachers_calendar():
    provider, http = oauth_provider([({"status": "204"}, "")])
    provider.delete(a_google_link())
    [(uri, method, body, _)] = api_calls(http)
    assert method == "DELETE"
    assert uri.split("?")[0] == f"{EVENTS_URI}/{stable_id('bk_1')}"
    assert query(uri)["sendUpdates"] == ["none"]


@pytest.mark.parametrize("status", [404, 410])
def test_deleting_an_event_already_gone_is_fine(status):
    provider, http = oauth_provider([failed(status, "deleted")])
    provider.delete(a_google_link())
    assert len(api_calls(http)) == 1


def test_a_delete_during_an_outage_is_retryable():
    provider, _ = oauth_provider([failed(503)])
    with pytest.raises(RetryableMeetingError):
        provider.delete(a_google_link())


def test_deleting_a_fallback_jitsi_link_never_calls_google():
    provider, http = oauth_provider([])
    provider.delete(MeetingLink(url="https://meet.jit.si/Tutorbook-x", provider="jitsi"))
    assert http.request_sequence == []


# -- service account with domain-wide delegation ------------------------------------------------


@pytest.fixture(scope="module")
def service_account_file(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "tutorbook-test",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": "meet-links@tutorbook-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": TOKEN_URI,
    }
    path = tmp_path_factory.mktemp("google") / "service-account.json"
    path.write_text(json.dumps(info))
    return str(path)


def jwt_claims(token_request_body: bytes) -> dict:
    form = parse_qs(token_request_body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    payload = form["assertion"][0].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.parametrize(
    ("impersonate", "subject"),
    [("bookings@school.org", "bookings@school.org"), (None, "teacher@school.org")],
)
def test_the_service_account_impersonates_the_configured_user_or_else_the_teacher(
    make_request, service_account_file, impersonate, subject
):
    http = HttpMockSequence([TOKEN_OK, ok(meet_event())])
    provider = GoogleMeetProvider(service_account_file=service_account_file, impersonate=impersonate, http=http)
    assert provider.create(make_request()).url == MEET_URL

    (token_uri, _, token_body, _), (events_uri, _, _, headers) = http.request_sequence
    claims = jwt_claims(token_body)
    assert token_uri == TOKEN_URI
    assert claims["iss"] == "meet-links@tutorbook-test.iam.gserviceaccount.com"
    assert claims["sub"] == subject
    assert claims["scope"] == SCOPE
    assert events_uri.startswith(EVENTS_URI + "?")
    assert headers["authorization"] == "Bearer ya29.test"


def test_a_missing_service_account_file_is_a_permanent_error(make_request, tmp_path):
    provider = GoogleMeetProvider(service_account_file=str(tmp_path / "missing.json"), http=HttpMockSequence([]))
    with pytest.raises(PermanentMeetingError) as raised:
        provider.create(make_request())
    assert raised.value.code == "service_account_file"


def test_incomplete_settings_are_refused_at_start_up():
    with pytest.raises(ValueError):
        GoogleMeetProvider(credentials_mode="service_account")
    with pytest.raises(ValueError):
        GoogleMeetProvider(credentials_mode="oauth", oauth_client_id="x")
    with pytest.raises(ValueError):
        GoogleMeetProvider(credentials_mode="api_key")


# -- moving the event with a rescheduled booking --------------------------------------------------


def google_link(booking_id: str = "bk_1") -> MeetingLink:
    return MeetingLink(
        url=MEET_URL, provider="google", external_id=f"{stable_id(booking_id)} teacher@school.org teacher@school.org"
    )


def test_a_move_patches_the_events_start_and_end_and_keeps_the_link(make_request):
    provider, http = oauth_provider([ok(meet_event())])
    first = make_request()
    start = first.starts_at + timedelta(days=2)
    later = dataclasses.replace(first, starts_at=start, ends_at=start + timedelta(minutes=90))
    assert provider.move(google_link(), later) == google_link()

    [(uri, method, body, headers)] = api_calls(http)
    assert method == "PATCH"
    assert uri.split("?")[0] == f"{EVENTS_URI}/{stable_id('bk_1')}"
    assert query(uri) == {"sendUpdates": ["none"], "alt": ["json"]}
    assert headers["authorization"] == "Bearer ya29.test"
    assert json.loads(body) == {
        "start": {"dateTime": "2030-01-09T15:00:00+00:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2030-01-09T16:30:00+00:00", "timeZone": "Europe/Paris"},
    }


def test_a_move_tells_the_parent_when_invites_are_configured(make_request):
    provider, http = oauth_provider([ok(meet_event())], send_attendee_invites=True)
    provider.move(google_link(), make_request())
    assert query(api_calls(http)[0][0])["sendUpdates"] == ["all"]


@pytest.mark.parametrize(
    "response,error,code",
    [
        (failed(404, "notFound"), PermanentMeetingError, "http_404"),
        (failed(503, "backendError"), RetryableMeetingError, "http_503"),
        (ok({**meet_event(), "status": "cancelled"}), PermanentMeetingError, "event_cancelled"),
    ],
)
def test_a_move_google_refuses_is_a_meeting_error(make_request, response, error, code):
    provider, _ = oauth_provider([response])
    with pytest.raises(error) as raised:
        provider.move(google_link(), make_request())
    assert raised.value.code == code


def test_a_link_of_another_provider_is_not_moved(make_request):
    provider, http = oauth_provider([])
    jitsi = MeetingLink(url="https://meet.jit.si/Tutorbook-x", provider="jitsi")
    assert provider.move(jitsi, make_request()) is jitsi
    assert api_calls(http) == []
