"""No input reaches the database unchecked: control characters, lone surrogates, oversized ids
and dates near year 1 or 9999 are a 422 in the envelope on SQLite and PostgreSQL alike, and
write nothing. (On PostgreSQL a NUL used to be a 500; on both, year 9999 overflowed into one.)"""

from datetime import UTC, datetime
from typing import Annotated

import pytest
import sqlalchemy as sa
from pydantic import AfterValidator, BeforeValidator, StringConstraints, TypeAdapter, ValidationError

from tests import factories as f
from tests.conftest import TABLES
from tests.jobs.helpers import admin_client
from tutorbook import validation as v

NUL = "\x00"
FAR_PAST, FAR_FUTURE = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59"


# -- the types themselves ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["a\x00b", "tab\tin a name", "bell\x07", "del\x7f", "c1\x85", "lone \ud800", "ls\u2028", "ps\u2029"]
)
def test_a_line_refuses_every_control_character_line_separator_and_lone_surrogates(text):
    with pytest.raises(ValidationError):
        line = TypeAdapter(Annotated[str, StringConstraints(max_length=100), AfterValidator(v.single_line)])
        line.validate_python(text)


def test_multi_line_text_keeps_newlines_and_tabs_and_reads_crlf_as_one_newline():
    notes = TypeAdapter(
        Annotated[str, StringConstraints(max_length=5), BeforeValidator(v.crlf_to_lf), AfterValidator(v.multi_line)]
    )
    assert notes.validate_python("a\r\nb\tc") == "a\nb\tc"
    for bad in ("a\rb", "a\x00", "a\x0bb", "toolong"):
        with pytest.raises(ValidationError):
            notes.validate_python(bad)


@pytest.mark.parametrize(
    "value", [FAR_PAST, FAR_FUTURE, "1999-12-31T23:59:59Z", "2100-12-31T23:00:00-05:00", "2026-12-01T10:00:00"]
)
def test_an_instant_needs_a_zone_and_a_year_from_2000_to_2100(value):
    with pytest.raises(ValidationError):
        TypeAdapter(v.Instant).validate_python(value)


def test_an_instant_comes_back_in_utc():
    got = TypeAdapter(v.Instant).validate_python("2026-12-01T10:00:00+05:00")
    assert got == datetime(2026, 12, 1, 5, tzinfo=UTC) and got.utcoffset().total_seconds() == 0


def test_small_numbers_are_ascii_digits_only():
    assert [v.small_number(s) for s in ("60", "²", "١", "9" * 5000, "", None, "-1")] == [60] + [None] * 6


# -- through the API, on both databases --------------------------------------------------


@pytest.fixture
def world(api, c):
    t, p = f.teacher(c), f.parent(c)
    return {"anon": c, "parent": p["client"], "teacher": t["client"], "admin": admin_client(api, c), "t": t, "p": p}


def _book(w, **changes):
    body = {
        "teacherId": w["t"]["user"]["id"],
        "studentId": w["p"]["students"][0],
        "subject": "Mathematics",
        "startsAt": f.slot(),
        "durationMinutes": 60,
    }
    return ("parent", "POST", "/api/Sessions/book", {"json": {**body, **changes}})


def _profile(**changes):
    body = {"subjects": ["Mathematics"], "hourlyRate": 6000, "currency": "usd", "timeZone": "UTC", "bio": "bio"}
    return ("teacher", "PUT", "/api/Teachers/me", {"json": {**body, **changes}})


def _register(**changes):
    body = {"email": "new@example.com", "password": "long-enough-pw", "fullName": "New", "role": "Parent"}
    return ("anon", "POST", "/api/Auth/register", {"json": {**body, **changes}})


SURROGATE_PASSWORD = b'{"email":"s@example.com","password":"long-enough-\\ud800","fullName":"S","role":"Parent"}'

# (name, request) -> the field the 422 must name
BAD_INPUTS = {
    "register: NUL in the name": (lambda w: _register(fullName="Ada" + NUL), "fullName"),
    "register: escape in the time zone": (lambda w: _register(timeZone="UTC\x1b"), "timeZone"),
    "register: lone surrogate in the password": (
        lambda w: ("anon", "POST", "/api/Auth/register", {"content": SURROGATE_PASSWORD}),
        "password",
    ),
    "login: NUL in the email": (
        lambda w: ("anon", "POST", "/api/Auth/login", {"json": {"email": "a\x00@example.com", "password": "x"}}),
        "email",
    ),
    "register: line separator in the name": (lambda w: _register(fullName="Ada\u2028Lovelace"), "fullName"),
    "student: paragraph separator in the name": (
        lambda w: ("parent", "POST", "/api/Students", {"json": {"fullName": "Kid\u2029Two"}}),
        "fullName",
    ),
    "profile: NEL in a subject": (lambda w: _profile(subjects=["Math\x85s"]), "subjects.0"),
    "book: line separator in the subject": (lambda w: _book(w, subject="Math\u2028s"), "subject"),
    "student: NUL in the name": (
        lambda w: ("parent", "POST", "/api/Students", {"json": {"fullName": "Kid" + NUL}}),
        "fullName",
    ),
    "student: line break in the grade": (
        lambda w: ("parent", "POST", "/api/Students", {"json": {"fullName": "Kid", "gradeLevel": "5\n6"}}),
        "gradeLevel",
    ),
    "student update: NUL in the notes": (
        lambda w: (
            "parent",
            "PUT",
            f"/api/Students/{w['p']['students'][0]}",
            {"json": {"fullName": "Kid", "notes": "likes" + NUL}},
        ),
        "notes",
    ),
    "profile: NUL in a subject": (lambda w: _profile(subjects=["Math" + NUL]), "subjects.0"),
    "profile: escape in the bio": (lambda w: _profile(bio="\x1b[31mred"), "bio"),
    "teachers: NUL in the subject filter": (
        lambda w: ("anon", "GET", "/api/Teachers", {"params": {"subject": NUL}}),
        "subject",
    ),
    "book: NUL in the subject": (lambda w: _book(w, subject="Math" + NUL), "subject"),
    "book: year 9999": (lambda w: _book(w, startsAt=FAR_FUTURE), "startsAt"),
    "book: year 1": (lambda w: _book(w, startsAt=FAR_PAST), "startsAt"),
    "availability: from year 1": (
        lambda w: ("anon", "GET", f"/api/Teachers/{w['t']['user']['id']}/availability", {"params": {"from": FAR_PAST}}),
        "from",
    ),
    "availability: to year 9999": (
        lambda w: ("anon", "GET", f"/api/Teachers/{w['t']['user']['id']}/availability", {"params": {"to": FAR_FUTURE}}),
        "to",
    ),
    "schedule: from year 9999": (
        lambda w: ("teacher", "GET", "/api/Sessions/teacher-schedule", {"params": {"from": FAR_FUTURE}}),
        "from",
    ),
    "confirm-payment: NUL in the id": (
        lambda w: ("parent", "POST", "/api/Sessions/confirm-payment/cs_%00", {}),
        "stripeSessionId",
    ),
    "confirm-payment: a 300-character id": (
        lambda w: ("parent", "POST", "/api/Sessions/confirm-payment/" + "c" * 300, {}),
        "stripeSessionId",
    ),
    "cancel-payment: NUL in the id": (
        lambda w: ("parent", "POST", "/api/Sessions/cancel-payment/cs_%00", {}),
        "stripeSessionId",
    ),
    "reconcile: since year 1": (
        lambda w: ("admin", "POST", "/api/Admin/reconcile", {"params": {"since": FAR_PAST, "dryRun": "true"}}),
        "since",
    ),
}


def row_counts(db) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(api, world, case):
    build, field = BAD_INPUTS[case]
    who, method, path, kwargs = build(world)
    if "content" in kwargs:
        kwargs["headers"] = {"content-type": "application/json"}
    before = row_counts(api.state.db)
    r = world[who].request(method, path, **kwargs)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["success"] is False and field in {d["field"] for d in body["data"]}, body
    assert row_counts(api.state.db) == before


def test_multi_line_notes_and_bio_keep_their_line_breaks(world):
    r = world["parent"].post("/api/Students", json={"fullName": "Kid", "notes": "line one\r\nline two\tend"})
    assert r.status_code == 201 and r.json()["data"]["notes"] == "line one\nline two\tend"
    r = world["teacher"].put("/api/Teachers/me", json=_profile(bio="Hello\nworld")[3]["json"])
    assert r.status_code == 200 and r.json()["data"]["bio"] == "Hello\nworld"


def test_times_in_range_with_any_zone_are_accepted(world):
    r = world["teacher"].get(
        "/api/Sessions/teacher-schedule", params={"from": "2000-01-02T00:00:00+14:00", "to": "2100-12-31T00:00:00Z"}
    )
    assert r.status_code == 200, r.text
