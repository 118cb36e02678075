"""The fetcher refuses what a calendar address must not reach or give: private hosts (also after
a redirect), wrong schemes, oversized and slow answers; and asks conditionally."""

import pytest

from tutorbook.calendars import fetch

DEV = fetch.Limits(allow_http=True, allow_private=True, max_bytes=10_000, timeout=2)
ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nEND:VCALENDAR\r\n"


def test_a_calendar_is_fetched_and_then_asked_for_only_if_it_changed(calendars):
    url = calendars.serve("/a.ics", body=ICS)
    first = fetch.fetch(url, limits=DEV)
    assert first.body == ICS and first.etag
    again = fetch.fetch(url, limits=DEV, etag=first.etag)
    assert again.body is None
    assert calendars.routes["/a.ics"].hits[-1]["if-none-match"] == first.etag


def test_a_private_address_is_refused_before_anything_is_sent(calendars):
    url = calendars.serve("/a.ics", body=ICS)
    with pytest.raises(fetch.FetchError, match="private network"):
        fetch.fetch(url, limits=fetch.Limits(allow_http=True, allow_private=False))
    assert calendars.routes["/a.ics"].hits == []


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1", "192.168.0.1", "fe80::1"]
)
def test_private_loopback_and_link_local_addresses_are_not_public(address):
    assert not fetch.is_public(address)


def test_public_addresses_are_public():
    assert fetch.is_public("8.8.8.8") and fetch.is_public("2606:4700:4700::1111")


def test_a_redirect_is_checked_again(calendars, monkeypatch):
    # 127.0.0.1 counts as public here, so the first hop is fetched; the redirect's target is private.
    monkeypatch.setattr(fetch, "is_public", lambda text: text == "127.0.0.1")
    url = calendars.serve("/moved.ics", location="http://10.0.0.7/secret.ics")
    with pytest.raises(fetch.FetchError, match="private network"):
        fetch.fetch(url, limits=fetch.Limits(allow_http=True, allow_private=False))
    assert len(calendars.routes["/moved.ics"].hits) == 1


def test_redirects_are_followed_a_few_times_only(calendars):
    target = calendars.serve("/final.ics", body=ICS)
    calendars.serve("/hop.ics", location="/final.ics")
    assert fetch.fetch(calendars.base_url + "/hop.ics", limits=DEV).body == ICS
    assert target.endswith("/final.ics")
    for i in range(fetch.MAX_REDIRECTS + 1):
        calendars.serve(f"/loop{i}.ics", location=f"/loop{i + 1}.ics")
    with pytest.raises(fetch.FetchError, match="redirected more than"):
        fetch.fetch(calendars.base_url + "/loop0.ics", limits=DEV)


def test_plain_http_needs_the_development_setting(calendars):
    url = calendars.serve("/a.ics", body=ICS)
    with pytest.raises(fetch.FetchError, match="https://"):
        fetch.fetch(url, limits=fetch.Limits(allow_private=True))
    with pytest.raises(fetch.FetchError, match="https://"):
        fetch.check_url("ftp://example.com/a.ics", limits=DEV)


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "streamed"])
def test_an_oversized_answer_is_refused(calendars, chunked):
    url = calendars.serve("/big.ics", body=b"X" * 20_000, chunked=chunked)
    with pytest.raises(fetch.FetchError, match="larger than 10,000 bytes"):
        fetch.fetch(url, limits=DEV)


def test_a_slow_answer_is_given_up_on(calendars):
    url = calendars.serve("/slow.ics", body=ICS, delay=1.5)
    with pytest.raises(fetch.FetchError, match="took longer than 0.5 s"):
        fetch.fetch(url, limits=fetch.Limits(allow_http=True, allow_private=True, timeout=0.5))


def test_an_error_answer_names_the_status_and_the_host_but_not_the_address(calendars):
    url = calendars.serve("/secret-token-123/gone.ics", status=404)
    with pytest.raises(fetch.FetchError) as caught:
        fetch.fetch(url, limits=DEV)
    assert "404" in caught.value.message and "127.0.0.1" in caught.value.message
    assert "secret-token" not in caught.value.message


def test_the_masked_address_keeps_the_host_and_hides_the_secret():
    masked = fetch.mask("https://calendar.example.com/ical/abc123secretXYZ/basic.ics")
    assert masked == "https://calendar.example.com/….ics" and "secret" not in masked
    assert fetch.normalise(" webcal://p01.example.com/x ") == "https://p01.example.com/x"
