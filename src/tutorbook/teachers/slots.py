"""Free time from weekly windows in the teacher's zone, minus busy bookings. Pure, DST-correct."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Window:
    weekday: int  # 0 = Monday, in the teacher's local calendar
    start_minute: int
    end_minute: int


def _local(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """Local wall-clock time on `day` at `minute` (1440 = next midnight), as UTC."""
    moment = datetime.combine(day, time(0), tzinfo=zone) if minute == 0 else None
    if minute >= 1440:
        moment = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    elif moment is None:
        moment = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    # Round-trip through UTC so a wall time in a DST gap lands on a real instant.
    return moment.astimezone(UTC)


def window_intervals(windows: Iterable[Window], *, zone: str, start: datetime, end: datetime) -> list[Interval]:
    """Every concrete UTC interval of the weekly windows that touches [start, end)."""
    tz = ZoneInfo(zone)
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    windows = list(windows)
    out: list[Interval] = []
    day = first
    while day <= last:
        for w in windows:
            if w.weekday == day.weekday():
                s, e = _local(day, w.start_minute, tz), _local(day, w.end_minute, tz)
                if e > start and s < end and e > s:
                    out.append((s, e))
        day += timedelta(days=1)
    return merge(out)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and join touching or overlapping intervals."""
    out: list[Interval] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def subtract(free: list[Interval], busy: Iterable[Interval]) -> list[Interval]:
    """`free` (in order, not overlapping, as `merge` makes them) minus every busy interval: one
    sweep over both in start order, O((free + busy) log busy). It was a pass over every free
    piece per busy interval, quadratic in a teacher's bookings (issue #33)."""
    held = sorted(busy)
    out: list[Interval] = []
    j = 0
    for s, e in free:
        while j < len(held) and held[j][1] <= s:  # over before this piece: over for every later one
            j += 1
        cursor, k = s, j
        while k < len(held) and held[k][0] < e:
            bs, be = held[k]
            if bs > cursor:
                out.append((cursor, bs))
            cursor = max(cursor, be)
            k += 1
        if cursor < e:
            out.append((cursor, e))
    return out


def free_intervals(
    windows: Iterable[Window],
    *,
    zone: str,
    start: datetime,
    end: datetime,
    busy: Iterable[Interval],
    now: datetime,
) -> list[Interval]:
    """Free UTC intervals in [max(start, now), end): windows minus busy time."""
    start = max(start, now)
    if start >= end:
        return []
    spans = window_intervals(windows, zone=zone, start=start, end=end)
    clipped = [(max(s, start), min(e, end)) for s, e in spans]
    return [(s, e) for s, e in subtract(clipped, busy) if e > s]


def within_windows(windows: Iterable[Window], *, zone: str, start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside one (merged) availability window."""
    spans = window_intervals(windows, zone=zone, start=start, end=end)
    return any(s <= start and end <= e for s, e in spans)


STEP = timedelta(minutes=30)
GRID = timedelta(minutes=5)


def _ceil(moment: datetime, step: timedelta) -> datetime:
    seconds = int(step.total_seconds())
    return datetime.fromtimestamp(-(-int(moment.timestamp()) // seconds) * seconds, UTC)


def start_times(free: Iterable[Interval], *, duration: timedelta, step: timedelta = STEP) -> list[datetime]:
    """Every start in the free intervals where a session of `duration` fits whole: each interval's
    first 5-minute mark (so the time right after a booking is offered), then every `step` mark."""
    out: list[datetime] = []
    for s, e in free:
        first = _ceil(s, GRID)
        if first + duration <= e:
            out.append(first)
        t = _ceil(first + GRID, step) if first + GRID <= e else e
        while t + duration <= e:
            out.append(t)
            t += step
    return sorted(set(out))
