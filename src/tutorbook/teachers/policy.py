"""A teacher's cancellation and reschedule terms. Pure.

The platform's defaults come from the settings; a teacher may set their own. The terms in force
when a booking is paid are copied onto the booking, so a later change never alters them."""

from __future__ import annotations

from dataclasses import dataclass

from tutorbook.config import Settings


@dataclass(frozen=True)
class Terms:
    """Full refund until `full_refund_hours` before the start, `late_refund_percent` after that;
    the parent may move a session until `reschedule_deadline_hours` before its start, at most
    `max_reschedules` times."""

    full_refund_hours: int
    late_refund_percent: int
    reschedule_deadline_hours: int
    max_reschedules: int

    @classmethod
    def platform(cls, settings: Settings) -> Terms:
        """The platform's defaults, for teachers who set none and bookings paid before terms were stored."""
        return cls(
            full_refund_hours=settings.refund_full_before_hours,
            late_refund_percent=settings.refund_late_percent,
            reschedule_deadline_hours=settings.reschedule_deadline_hours,
            max_reschedules=settings.max_reschedules,
        )

    def sentence(self) -> str:
        """The terms in one sentence, as the checkout and My Bookings state them."""
        late = "no refund" if self.late_refund_percent == 0 else f"a {self.late_refund_percent}% refund"
        if self.late_refund_percent >= 100:
            cancel = "Free cancellation (full refund) at any time"
        else:
            cancel = f"Free cancellation up to {_hours(self.full_refund_hours)} before the start, {late} after that"
        if self.max_reschedules == 0:
            move = "the time cannot be changed"
        else:
            times = "once" if self.max_reschedules == 1 else f"up to {self.max_reschedules} times"
            move = f"change the time {times}, until {_hours(self.reschedule_deadline_hours)} before the start"
        return f"{cancel}; {move}."


def _hours(n: int) -> str:
    return "1 hour" if n == 1 else f"{n} hours"


FIELDS = ("full_refund_hours", "late_refund_percent", "reschedule_deadline_hours", "max_reschedules")
