"""A teacher's free time, cached per teacher and week until their schedule changes (issue #33).

A week's free intervals (the weekly hours in the teacher's zone, minus time off, holding
bookings and the busy times of their own calendars, whatever the time now) are kept in the
process, labelled with the teacher's schedule version (`tutorbook.versions`). A request reads
that one counter (an indexed read), takes the weeks it spans from the cache when their label is
current, computes the others (all in one read of each table), then cuts the answer to
[max(from, now), to). Whatever changes the teacher's free time moves the counter in its own
transaction (`versions.schedule_changed`: a booking made, cancelled, moved or completed, the
hours, the time off, the time zone, a calendar's busy times), so every process's next request
recomputes: a slot taken is gone from the very next answer. An answer for a range that starts
after now does not depend on now, so it is kept too, written, under the same version
(`bookable_answer`).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from tutorbook.bookings import repository as repo
from tutorbook.calendars import service as calendars
from tutorbook.teachers import service as teachers
from tutorbook.teachers import slots
from tutorbook.versions import read, schedule_key

WEEK = timedelta(days=7)
MONDAY = datetime(2000, 1, 3, tzinfo=UTC)  # weeks start on Mondays at 00:00 UTC

Key = tuple[uuid.UUID, datetime]
AnswerKey = tuple[uuid.UUID, datetime, datetime, int]  # teacher, from, to, minutes


class WeekCache:
    """(teacher, week start) -> (schedule version, that week's free intervals); the least recently
    used entries go first past `max_entries`. Thread-safe (the sync pages call it from threads)."""

    def __init__(self, max_entries: int = 10_000, max_answers: int = 1_000) -> None:
        self.max_entries, self.max_answers = max_entries, max_answers
        self._entries: OrderedDict[Key, tuple[int, list[slots.Interval]]] = OrderedDict()
        self._answers: OrderedDict[AnswerKey, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Key, version: int) -> list[slots.Interval] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != version:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[1]

    def put(self, key: Key, version: int, free: list[slots.Interval]) -> None:
        with self._lock:
            self._entries[key] = (version, free)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def answer(self, key: AnswerKey, version: int) -> bytes | None:
        """A written answer kept under this schedule version, or None."""
        with self._lock:
            found = self._answers.get(key)
            if found is None or found[0] != version:
                return None
            self._answers.move_to_end(key)
            return found[1]

    def keep_answer(self, key: AnswerKey, version: int, body: bytes) -> None:
        with self._lock:
            self._answers[key] = (version, body)
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_answers:
                self._answers.popitem(last=False)


def week_of(moment: datetime) -> datetime:
    """The start of the week (Monday 00:00 UTC) holding `moment`."""
    return MONDAY + ((moment - MONDAY) // WEEK) * WEEK


def free_between(
    session: Session,
    *,
    cache: WeekCache,
    teacher_id: uuid.UUID,
    start: datetime,
    end: datetime,
    version: int | None = None,
) -> list[slots.Interval]:
    """The teacher's free intervals touching [start, end), whole weeks of them, in order (not cut
    to `start`, `end` or now). 404 for an unknown teacher. `version`: the teacher's schedule
    version, when the caller has just read it."""
    if version is None:
        version = _version(session, teacher_id)
    weeks: list[datetime] = []
    week = week_of(start)
    while week < end:
        weeks.append(week)
        week += WEEK
    found = {w: cache.get((teacher_id, w), version) for w in weeks}
    missing = [w for w in weeks if found[w] is None]
    if missing:
        for w, free in _compute(session, teacher_id=teacher_id, weeks=missing).items():
            cache.put((teacher_id, w), version, free)
            found[w] = free
    return slots.merge(interval for w in weeks for interval in found[w] or [])


def _compute(session: Session, *, teacher_id: uuid.UUID, weeks: list[datetime]) -> dict[datetime, list[slots.Interval]]:
    """Each week's free intervals, from one read of the profile, hours, time off and bookings."""
    profile = teachers.get_profile(session, teacher_id)
    windows = teachers.windows(session, teacher_id)
    first, last = weeks[0], weeks[-1] + WEEK
    busy = repo.busy_intervals(session, teacher_id=teacher_id, start=first, end=last)
    busy += teachers.time_off_intervals(session, teacher_id, start=first, end=last)
    busy += calendars.busy_intervals(session, teacher_id, start=first, end=last)  # their own calendars
    return {
        w: slots.free_intervals(windows, zone=profile.time_zone, start=w, end=w + WEEK, busy=busy, now=w)
        for w in weeks
    }


def _version(session: Session, teacher_id: uuid.UUID) -> int:
    return read(session, [schedule_key(teacher_id)])[schedule_key(teacher_id)]


def bookable_starts(
    session: Session,
    *,
    cache: WeekCache,
    teacher_id: uuid.UUID,
    start: datetime,
    end: datetime,
    minutes: int,
    now: datetime,
    version: int | None = None,
) -> list[datetime]:
    """`bookings.reporting.bookable_starts`, from the cache: the starts in [start, end) where a
    session of `minutes` fits whole, ahead of `now`."""
    teachers.check_range(start, end)
    duration = timedelta(minutes=minutes)
    lo, hi = max(start, now), end + duration  # past `end` by one session: a late start is judged whole
    if lo >= hi:
        return []
    free = free_between(session, cache=cache, teacher_id=teacher_id, start=lo, end=hi, version=version)
    cut = [(max(s, lo), min(e, hi)) for s, e in free if e > lo and s < hi]
    return [t for t in slots.start_times(cut, duration=duration) if t < end and t > now]


def bookable_answer(
    session: Session,
    *,
    cache: WeekCache,
    teacher_id: uuid.UUID,
    start: datetime,
    end: datetime,
    minutes: int,
    now: datetime,
    render: Callable[[list[datetime]], bytes],
) -> bytes:
    """`bookable_starts` written by `render`. An answer for a range starting after `now` does not
    depend on `now` (every start in it is ahead of `now`), only on the teacher's schedule, so it
    is kept, written, under the schedule version (issue #33: working the week's starts out and
    writing them again was two thirds of a cached week's cost); the same question under the same
    version gets the same bytes. A range that has begun is worked out every time."""
    teachers.check_range(start, end)
    if start <= now:
        return render(bookable_starts(session, cache=cache, teacher_id=teacher_id, start=start, end=end,
                                      minutes=minutes, now=now))  # fmt: skip
    version = _version(session, teacher_id)
    key = (teacher_id, start, end, minutes)
    found = cache.answer(key, version)
    if found is not None:
        return found
    starts = bookable_starts(session, cache=cache, teacher_id=teacher_id, start=start, end=end, minutes=minutes,
                             now=now, version=version)  # fmt: skip
    body = render(starts)
    cache.keep_answer(key, version, body)
    return body
