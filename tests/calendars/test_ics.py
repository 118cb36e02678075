"""Busy periods from an iCalendar file: recurrences expanded, all-day on the teacher's clock,
free, cancelled and Tutorbook's own events left out."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.calendars import calendar_files as cal
from tutorbook.calendars import ics


def periods(data: bytes, *, start=None, end=None, own_host="tutorbook.example"):
    start = start or datetime.now(UTC)
    end = end or start + timedelta(days=400)
    return ics.busy_periods(data, zone=cal.ZONE, start=start, end=end, own_host=own_host)


def test_only_the_busy_occurrences_are_kept_each_at_its_own_time():
    monday = cal.next_monday()
    change = cal.next_clock_change(monday + timedelta(days=22))
    found = periods(cal.the_calendar(monday, change, own_host="tutorbook.example"))
    assert [(b.starts_at, b.ends_at) for b in found] == cal.expected_busy(monday, change)


def test_an_all_day_event_on_the_day_the_clocks_change_lasts_that_day_on_the_teachers_clock():
    monday = cal.next_monday()
    change = cal.next_clock_change(monday)
    found = periods(cal.the_calendar(monday, change, own_host="x"))
    day = next(b for b in found if b.all_day)
    assert day.ends_at - day.starts_at in (timedelta(hours=23), timedelta(hours=25))


def test_an_event_of_another_tutorbook_is_busy_time():
    monday = cal.next_monday()
    change = cal.next_clock_change(monday)
    mine = periods(cal.the_calendar(monday, change, own_host="tutorbook.example"), own_host="tutorbook.example")
    theirs = periods(cal.the_calendar(monday, change, own_host="other.example"), own_host="tutorbook.example")
    assert len(theirs) == len(mine) + 1


def test_only_the_range_asked_is_given():
    monday = cal.next_monday()
    change = cal.next_clock_change(monday + timedelta(days=22))
    data = cal.the_calendar(monday, change, own_host="tutorbook.example")
    found = periods(data, start=cal.local(monday, 0), end=cal.local(monday + timedelta(days=1), 0))
    assert [(b.starts_at, b.ends_at) for b in found] == cal.expected_busy(monday, change)[:2]


@pytest.mark.parametrize("data", [b"", b"<html>not a calendar</html>", b"BEGIN:VEVENT\r\nEND:VEVENT\r\n"])
def test_what_is_not_a_calendar_is_refused_in_words(data):
    with pytest.raises(ics.BadCalendar):
        periods(data)
