"""Form fields and query values on the pages go through the same checks as the API: a control
character, a mangled id or a digit that int() refuses is a message on the page, never a 500."""

import pytest
import sqlalchemy as sa

from tests import factories as f
from tests.conftest import TABLES
from tests.web.helpers import assert_clean, text_of


def row_counts(db) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def booking_form(parent, teacher, **changes) -> dict:
    form = {
        "teacher_id": teacher["user"]["id"],
        "student_id": parent["students"][0],
        "subject": "Mathematics",
        "duration_minutes": "60",
        "starts_at": f.slot(),
        "week": "0",
    }
    return {**form, **changes}


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"subject": "Math\x00"}, "Choose a subject."),
        ({"duration_minutes": "²"}, "Choose a length."),  # "²".isdigit() is True; int("²") raises
        ({"duration_minutes": "6" * 5000}, "Choose a length."),  # int() refuses over 4,300 digits
        ({"starts_at": "9999-12-31T23:59:59-23:59"}, "Choose a start time."),
        ({"week": "²", "subject": "Math\x00"}, "Choose a subject."),  # the week is read first
    ],
)
def test_a_malformed_booking_form_is_a_message_on_the_page(api, parent_web, parent, teacher, changes, message):
    before = row_counts(api.state.db)
    r = parent_web.post("/book", booking_form(parent, teacher, **changes))
    assert r.status_code == 422, r.text[:300]
    assert_clean(r)
    assert message in text_of(r)
    assert row_counts(api.state.db) == before


def test_a_childs_name_with_a_control_character_is_refused_on_the_page(api, parent_web, parent):
    r = parent_web.post("/children", {"full_name": "Kid\x00"})
    assert r.status_code == 422 and "Full name: must not contain control characters" in text_of(r)
    assert_clean(r)
    r = parent_web.post(f"/children/{parent['students'][0]}", {"full_name": "Kid\x1b"})
    assert r.status_code == 303
    r = parent_web.get("/children")
    assert "must not contain control characters" in text_of(r)
    assert [s["fullName"] for s in parent["client"].get("/api/Students").json()["data"]] == ["Kid 0"]


def test_register_and_login_refuse_control_characters_on_the_page(api, web):
    before = row_counts(api.state.db)
    form = {"email": "x@example.com", "password": "long-enough-pw", "full_name": "X\x00", "role": "Parent"}
    r = web.post("/register", form)
    assert r.status_code == 422 and "Full name:" in text_of(r)
    r = web.post("/login", {"email": "x\x00@example.com", "password": "long-enough-pw"})
    assert r.status_code == 401 and "Wrong email or password" in text_of(r)
    assert row_counts(api.state.db) == before


@pytest.mark.parametrize("session_id", ["cs_\x00", "cs_" + "x" * 300, "cs with spaces"])
def test_a_mangled_checkout_id_on_the_return_pages_is_no_reference(parent_web, booking, session_id):
    r = parent_web.get("/payment/success", params={"session_id": session_id, "type": "session-booking"})
    assert r.status_code == 400 and "no payment reference" in text_of(r)
    assert_clean(r)
    r = parent_web.get("/payment/cancel", params={"session_id": session_id, "type": "session-booking"})
    assert r.status_code == 200
    assert_clean(r)


def test_a_malformed_query_is_a_bad_link_and_a_malformed_path_id_no_page(web):
    r = web.get("/", params={"subject": "Math\x00"})
    assert r.status_code == 422 and "This link is not valid." in text_of(r)
    assert_clean(r)
    assert web.get("/my-bookings", params={"page": "0"}).status_code in (303, 422)
    assert web.get("/teachers/not-an-id").status_code == 404


def test_a_next_path_with_control_characters_is_not_followed(web, parent):
    r = web.get("/login", params={"next": "/children\r\nSet-Cookie: x=1"})
    assert r.status_code == 200 and "Set-Cookie" not in r.text
    r = web.post("/login", {"email": parent["email"], "password": f.PASSWORD, "next": "/children\x00"})
    assert r.status_code == 303 and r.headers["location"] == "/my-bookings"
