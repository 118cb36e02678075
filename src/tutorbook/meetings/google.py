"""Google Meet links through the Google Calendar API v3.

The only module that imports the Google client libraries (the `tutorbook[google]` extra).
`tutorbook.meetings.provider_from_config` loads this module by name only when Google Meet is
configured, so the default install (Jitsi) never needs them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_errors
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tutorbook.meetings.base import (
    MeetingError,
    MeetingLink,
    MeetingRequest,
    PermanentMeetingError,
    RetryableMeetingError,
)

SCOPE = "https://www.googleapis.com/auth/calendar.events"
# Teachers' busy times (docs/calendars.md): times only, never an event's title.
FREEBUSY_SCOPE = "https://www.googleapis.com/auth/calendar.freebusy"
# Google answers free/busy for a few months at a time at most; longer ranges are asked in pieces.
FREEBUSY_SPAN = timedelta(days=56)
TOKEN_URI = "https://oauth2.googleapis.com/token"
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "RATE_LIMIT_EXCEEDED"})
CREDENTIALS_MODES = ("service_account", "oauth")


def stable_id(booking_id: str) -> str:
    """Return the event id and conference request id of a booking: same booking, same id."""
    # Event ids may only use base32hex characters (0-9, a-v); hex digits are a subset.
    return hashlib.sha256(f"tutorbook-booking:{booking_id}".encode()).hexdigest()[:32]


def meet_url(event: dict[str, Any]) -> str | None:
    """Return the Meet link of an event: the `video` entry point, else `hangoutLink`."""
    for entry in event.get("conferenceData", {}).get("entryPoints", []):
        if entry.get("entryPointType") == "video" and entry.get("uri"):
            uri: str = entry["uri"]
            return uri
    link: str | None = event.get("hangoutLink")
    return link


def conference_status(event: dict[str, Any]) -> str:
    """Return the conference create status: pending, success or failure."""
    request = event.get("conferenceData", {}).get("createRequest", {})
    status: str = request.get("status", {}).get("statusCode", "pending")
    return status


class GoogleMeetProvider:
    """Creates a Calendar event with a Meet conference on the teacher's calendar."""

    name = "google"
    instant = False  # a call to Google Calendar

    def __init__(
        self,
        *,
        credentials_mode: str = "service_account",
        service_account_file: str | None = None,
        impersonate: str | None = None,
        oauth_client_id: str | None = None,
        oauth_client_secret: str | None = None,
        refresh_token_for: Callable[[str], str | None] | None = None,
        calendar_id: str | None = None,
        calendar_id_for: Callable[[str], str] | None = None,
        send_attendee_invites: bool = False,
        poll_delays: Sequence[float] = (1, 2, 4, 8),
        sleep: Callable[[float], None] = time.sleep,
        http: Any = None,
        timeout_s: float = 30,
    ) -> None:
        if credentials_mode not in CREDENTIALS_MODES:
            raise ValueError(f"credentials_mode must be one of {CREDENTIALS_MODES}")
        if credentials_mode == "service_account" and not service_account_file:
            raise ValueError("service_account mode needs service_account_file")
        if credentials_mode == "oauth" and not (oauth_client_id and oauth_client_secret and refresh_token_for):
            raise ValueError("oauth mode needs oauth_client_id, oauth_client_secret, refresh_token_for")
        self.credentials_mode = credentials_mode
        self.service_account_file = service_account_file
        self.impersonate = impersonate
        self.oauth_client_id = oauth_client_id
        self.oauth_client_secret = oauth_client_secret
        self.refresh_token_for = refresh_token_for
        self.calendar_id = calendar_id
        self.calendar_id_for = calendar_id_for
        self.send_attendee_invites = send_attendee_invites
        self.poll_delays = tuple(poll_delays)
        self.sleep = sleep
        self.timeout_s = timeout_s
        self._http = http
        self._credentials: dict[str, Any] = {}  # by impersonated user or refresh token

    def create(self, request: MeetingRequest) -> MeetingLink:
        """Insert the event (or find the one a previous attempt made) and return its Meet link."""

        calendar = self._calendar_for(request.teacher_email)
        event_id = stable_id(request.booking_id)
        with _mapped_errors():
            events = self._events(request.teacher_email)
            try:
                event = events.insert(
                    calendarId=calendar,
                    body=self._event_body(request, event_id),
                    conferenceDataVersion=1,
                    sendUpdates=self._send_updates(),
                ).execute()
            except HttpError as exc:
                if exc.status_code != 409:
                    raise
                # An earlier attempt made this event (the id is ours): reuse it, no second meeting.
                event = events.get(calendarId=calendar, eventId=event_id).execute()
            url = self._await_link(events, calendar, event)
        external_id = " ".join((event_id, calendar, request.teacher_email))
        return MeetingLink(url=url, provider=self.name, external_id=external_id)

    def delete(self, link: MeetingLink) -> None:
        """Delete the event behind the link; an event already gone (404/410) is fine."""

        if link.provider != self.name or not link.external_id:
            return
        event_id, calendar, teacher_email = link.external_id.split(" ", 2)
        with _mapped_errors():
            events = self._events(teacher_email)
            try:
                events.delete(calendarId=calendar, eventId=event_id, sendUpdates=self._send_updates()).execute()
            except HttpError as exc:
                if exc.status_code not in (404, 410):
                    raise

    def move(self, link: MeetingLink, request: MeetingRequest) -> MeetingLink:
        """Patch the event behind the link to the request's start and end (the Meet link stays);
        a link this provider did not make is left as it is. Attendees are told when invites are on."""

        if link.provider != self.name or not link.external_id:
            return link
        event_id, calendar, teacher_email = link.external_id.split(" ", 2)
        body = {
            "start": {"dateTime": request.starts_at.isoformat(), "timeZone": request.time_zone},
            "end": {"dateTime": request.ends_at.isoformat(), "timeZone": request.time_zone},
        }
        with _mapped_errors():
            event = (
                self._events(teacher_email)
                .patch(calendarId=calendar, eventId=event_id, body=body, sendUpdates=self._send_updates())
                .execute()
            )
        if event.get("status") == "cancelled":
            raise PermanentMeetingError(f"event {event_id} was cancelled in Google Calendar", code="event_cancelled")
        return MeetingLink(url=meet_url(event) or link.url, provider=self.name, external_id=link.external_id)

    def _calendar_for(self, teacher_email: str) -> str:
        if self.calendar_id_for is not None:
            return self.calendar_id_for(teacher_email)
        return self.calendar_id or teacher_email

    def _send_updates(self) -> str:
        return "all" if self.send_attendee_invites else "none"

    def _event_body(self, request: MeetingRequest, event_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": event_id,
            "summary": request.title,
            "start": {"dateTime": request.starts_at.isoformat(), "timeZone": request.time_zone},
            "end": {"dateTime": request.ends_at.isoformat(), "timeZone": request.time_zone},
            "conferenceData": {
                "createRequest": {
                    "requestId": event_id,
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            },
            "extendedProperties": {"private": {"tutorbookBookingId": request.booking_id}},
        }
        if self.send_attendee_invites and request.parent_email:
            body["attendees"] = [{"email": request.parent_email}]
        return body

    def _await_link(self, events: Any, calendar: str, event: dict[str, Any]) -> str:
        delays = iter(self.poll_delays)
        while True:
            if event.get("status") == "cancelled":
                raise PermanentMeetingError(
                    f"event {event.get('id')} was cancelled in Google Calendar",
                    code="event_cancelled",
                )
            url = meet_url(event)
            if url:
                return url
            if conference_status(event) == "failure":
                raise PermanentMeetingError(
                    "Google could not create the Meet conference (is Meet enabled for this user?)",
                    code="conference_failed",
                )
            delay = next(delays, None)
            if delay is None:
                raise RetryableMeetingError("the Meet conference is still pending", code="conference_pending")
            self.sleep(delay)
            event = events.get(calendarId=calendar, eventId=event["id"]).execute()

    def busy(
        self, *, teacher_email: str, calendar_ids: Sequence[str], start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """The busy times of the teacher's chosen calendars in [start, end) from Google Calendar's
        free/busy query (as the teacher, or the configured user): times only. A calendar Google
        cannot read (not found, not shared) is a PermanentMeetingError naming it. Free/busy has no
        sync token, so each call asks the whole range again (in FREEBUSY_SPAN pieces)."""
        out: list[tuple[datetime, datetime]] = []
        with _mapped_errors():
            freebusy = self._service(teacher_email, scope=FREEBUSY_SCOPE).freebusy()
            piece = start
            while piece < end:
                until = min(end, piece + FREEBUSY_SPAN)
                body = {
                    "timeMin": piece.isoformat(),
                    "timeMax": until.isoformat(),
                    "items": [{"id": calendar_id} for calendar_id in calendar_ids],
                }
                answer = freebusy.query(body=body).execute()
                out += _busy_of(answer, calendar_ids)
                piece = until
        return sorted(set(out))

    def _service(self, teacher_email: str, *, scope: str = SCOPE) -> Any:
        http = self._http if self._http is not None else httplib2.Http(timeout=self.timeout_s)
        authed = google_auth_httplib2.AuthorizedHttp(self._credentials_for(teacher_email, scope=scope), http=http)
        return build("calendar", "v3", http=authed, static_discovery=True, cache_discovery=False)

    def _events(self, teacher_email: str) -> Any:
        return self._service(teacher_email).events()

    def _credentials_for(self, teacher_email: str, *, scope: str = SCOPE) -> Any:
        # Cached so a token is fetched once per user (and scope) and refreshed by google-auth when
        # it expires. The Meet scope's key stays the user alone, as before the free/busy scope came.
        if self.credentials_mode == "service_account":
            subject = self.impersonate or teacher_email
            key = subject if scope == SCOPE else f"{subject} {scope}"
            if key not in self._credentials:
                self._credentials[key] = self._service_account_credentials(subject, scope=scope)
            return self._credentials[key]
        lookup = self.refresh_token_for  # required in oauth mode (checked in __init__)
        token = lookup(teacher_email) if lookup is not None else None
        if not token:
            raise PermanentMeetingError(f"no Google refresh token for {teacher_email}", code="no_refresh_token")
        key = token if scope == SCOPE else f"{token} {scope}"
        if key not in self._credentials:
            self._credentials[key] = self._oauth_credentials(token, scope=scope)
        return self._credentials[key]

    def _service_account_credentials(self, subject: str, *, scope: str = SCOPE) -> Any:

        try:
            return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]  # google-auth has no types here
                self.service_account_file, scopes=[scope], subject=subject
            )
        except (OSError, ValueError) as exc:
            raise PermanentMeetingError(
                f"cannot read the service account file: {exc}", code="service_account_file"
            ) from exc

    def _oauth_credentials(self, refresh_token: str, *, scope: str = SCOPE) -> Any:

        return Credentials(  # type: ignore[no-untyped-call]  # google-auth's constructor has no types
            None,
            refresh_token=refresh_token,
            token_uri=TOKEN_URI,
            client_id=self.oauth_client_id,
            client_secret=self.oauth_client_secret,
            scopes=[scope],
        )


def _busy_of(answer: dict[str, Any], calendar_ids: Sequence[str]) -> list[tuple[datetime, datetime]]:
    """The busy times of a free/busy answer; a calendar Google could not read raises, naming it."""
    out = []
    calendars = answer.get("calendars", {})
    for calendar_id in calendar_ids:
        found = calendars.get(calendar_id, {})
        errors = [e.get("reason", "?") for e in found.get("errors", [])]
        if errors or calendar_id not in calendars:
            reason = ", ".join(errors) or "not in the answer"
            raise PermanentMeetingError(f"Google Calendar cannot read {calendar_id} ({reason})", code="freebusy")
        for period in found.get("busy", []):
            out.append((_instant(period["start"]), _instant(period["end"])))
    return out


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextmanager
def _mapped_errors() -> Iterator[None]:

    try:
        yield
    except HttpError as exc:
        raise _from_http_error(exc) from exc
    except auth_errors.RefreshError as exc:
        raise _from_refresh_error(exc) from exc
    except (auth_errors.TransportError, httplib2.HttpLib2Error, OSError) as exc:
        raise RetryableMeetingError(f"cannot reach Google: {exc}", code="network") from exc


def _from_http_error(exc: Any) -> MeetingError:
    status = exc.status_code
    reasons = _reasons(exc.content)
    message = f"Google Calendar answered {status} ({', '.join(reasons) or '-'}): {exc.reason}"
    if status == 429 or (status == 403 and RATE_LIMIT_REASONS & set(reasons)):
        return RetryableMeetingError(message, code="rate_limited", retry_after=_retry_after(exc.resp))
    if status >= 500:
        return RetryableMeetingError(message, code=f"http_{status}", retry_after=_retry_after(exc.resp))
    return PermanentMeetingError(message, code=f"http_{status}")


def _from_refresh_error(exc: Any) -> MeetingError:
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    code = str(data.get("error") or "refresh_failed")
    message = f"Google refused the credentials: {exc.args[0] if exc.args else exc}"
    if getattr(exc, "retryable", False):
        return RetryableMeetingError(message, code=code)
    return PermanentMeetingError(message, code=code)


def _reasons(content: bytes) -> list[str]:
    """Return the reasons Google gave, from both the old `errors` and the newer `details` lists."""
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        return []
    if not isinstance(error, dict):
        return []
    items = [*error.get("errors", []), *error.get("details", [])]
    return [item["reason"] for item in items if isinstance(item, dict) and item.get("reason")]


def _retry_after(resp: Any) -> float | None:
    try:
        return float(resp.get("retry-after"))
    except (TypeError, ValueError):
        return None
