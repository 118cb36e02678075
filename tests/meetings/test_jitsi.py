import re
from datetime import datetime

import pytest

from tutorbook.meetings import JitsiProvider, MeetingLink, MeetingRequest

ROOM = re.compile(r"^Tutorbook-[0-9a-f]{32}$")


def test_the_default_link_is_a_meet_jit_si_room_with_a_random_name(make_request):
    link = JitsiProvider().create(make_request())
    base, room = link.url.rsplit("/", 1)
    assert base == "https://meet.jit.si"
    assert ROOM.match(room)
    assert link.provider == "jitsi"
    assert link.external_id is None


def test_two_links_for_the_same_booking_never_share_a_room(make_request):
    provider = JitsiProvider()
    rooms = {provider.create(make_request()).url for _ in range(200)}
    assert len(rooms) == 200


def test_the_room_name_carries_128_random_bits_in_url_safe_characters(make_request):
    room = JitsiProvider().create(make_request()).url.rsplit("/", 1)[1]
    random_part = room.removeprefix("Tutorbook-")
    assert len(random_part) * 4 == 128
    assert re.fullmatch(r"[A-Za-z0-9_-]+", room)


def test_the_room_name_does_not_depend_on_the_booking(make_request):
    url = JitsiProvider().create(make_request(booking_id="bk_42")).url
    assert "bk_42" not in url and "teacher" not in url


def test_a_self_hosted_jitsi_base_url_is_used_without_a_double_slash(make_request):
    link = JitsiProvider("https://jitsi.school.org/").create(make_request())
    assert link.url.startswith("https://jitsi.school.org/Tutorbook-")
    assert "//Tutorbook" not in link.url


def test_a_base_url_without_a_scheme_is_refused():
    with pytest.raises(ValueError):
        JitsiProvider("meet.jit.si")


def test_jitsi_never_makes_a_google_meet_link(make_request):
    assert all("meet.google.com" not in JitsiProvider().create(make_request()).url for _ in range(50))


def test_deleting_a_jitsi_link_does_nothing():
    JitsiProvider().delete(MeetingLink(url="https://meet.jit.si/Tutorbook-x", provider="jitsi"))


def test_a_naive_start_time_is_refused():
    with pytest.raises(ValueError):
        MeetingRequest(
            booking_id="bk_1",
            teacher_email="t@school.org",
            parent_email=None,
            title="x",
            starts_at=datetime(2030, 1, 7, 15),
            ends_at=datetime(2030, 1, 7, 16),
            time_zone="UTC",
        )
