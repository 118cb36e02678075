"""Free slots from weekly windows, across daylight-saving changes (no database)."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tutorbook.teachers import slots
from tutorbook.teachers.slots import Window

MON_9_TO_12 = [Window(0, 9 * 60, 12 * 60)]


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_a_window_is_placed_in_the_teachers_zone_before_and_after_the_us_dst_change():
    # 2026-03-08: New York moves from UTC-5 to UTC-4.
    out = slots.window_intervals(MON_9_TO_12, zone="America/New_York", start=utc(2026, 3, 2), end=utc(2026, 3, 10))
    assert out == [(utc(2026, 3, 2, 14), utc(2026, 3, 2, 17)), (utc(2026, 3, 9, 13), utc(2026, 3, 9, 16))]


def test_a_window_follows_europe_back_to_winter_time():
    # 2026-10-25: Berlin moves from UTC+2 to UTC+1.
    sunday_1_to_4 = [Window(6, 60, 240)]
    out = slots.window_intervals(sunday_1_to_4, zone="Europe/Berlin", start=utc(2026, 10, 18), end=utc(2026, 10, 26))
    assert out[0] == (utc(2026, 10, 17, 23), utc(2026, 10, 18, 2))
    # On the change day 01:00 is still summer time (UTC+2) and 04:00 is winter time (UTC+1): 4 real hours.
    assert out[1] == (utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))


def test_a_window_ending_at_midnight_reaches_the_next_day():
    out = slots.window_intervals([Window(0, 22 * 60, 1440)], zone="UTC", start=utc(2026, 3, 2), end=utc(2026, 3, 3))
    assert out == [(utc(2026, 3, 2, 22), utc(2026, 3, 3, 0))]


def test_busy_time_is_cut_out_and_past_time_is_dropped():
    free = slots.free_intervals(
        MON_9_TO_12,
        zone="UTC",
        start=utc(2026, 3, 2),
        end=utc(2026, 3, 3),
        busy=[(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))],
        now=utc(2026, 3, 2, 9, 30),
    )
    assert free == [(utc(2026, 3, 2, 9, 30), utc(2026, 3, 2, 10)), (utc(2026, 3, 2, 11), utc(2026, 3, 2, 12))]


def test_within_windows_needs_the_whole_span_inside_one_window():
    assert slots.within_windows(MON_9_TO_12, zone="UTC", start=utc(2026, 3, 2, 9), end=utc(2026, 3, 2, 12))
    assert not slots.within_windows(MON_9_TO_12, zone="UTC", start=utc(2026, 3, 2, 11), end=utc(2026, 3, 2, 13))


def test_adjacent_windows_merge_into_one():
    ws = [Window(0, 9 * 60, 10 * 60), Window(0, 10 * 60, 11 * 60)]
    assert slots.within_windows(ws, zone="UTC", start=utc(2026, 3, 2, 9, 30), end=utc(2026, 3, 2, 10, 30))


def _subtract_one_by_one(free, busy):
    """The former subtraction (a pass over every piece per busy interval): the reference."""
    result = list(free)
    for bs, be in busy:
        nxt = []
        for s, e in result:
            if be <= s or bs >= e:
                nxt.append((s, e))
                continue
            if s < bs:
                nxt.append((s, bs))
            if be < e:
                nxt.append((be, e))
        result = nxt
    return result


_spans = st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), max_size=12)


@given(free=_spans, busy=_spans)
def test_the_sweep_subtracts_exactly_what_one_interval_at_a_time_did(free, busy):
    base = datetime(2026, 1, 5, tzinfo=UTC)
    as_times = lambda spans: [(base + timedelta(minutes=a), base + timedelta(minutes=a + n)) for a, n in spans]  # noqa: E731
    merged = slots.merge(as_times(free))
    assert slots.subtract(merged, as_times(busy)) == _subtract_one_by_one(merged, as_times(busy))
