"""The booking domain's errors, each with its HTTP status (rendered as the envelope)."""

from __future__ import annotations

from tutorbook.bookings.lifecycle import Reason
from tutorbook.errors import BadRequest, Conflict, NotFound


class SlotTaken(Conflict):
    message = "This time is no longer free; choose another slot"


class AlreadyPaid(BadRequest):
    message = "Cannot cancel - payment already processed"


class BookingNotFound(NotFound):
    message = "Session not found"


class CalendarBusy(Conflict):
    message = "The teacher's calendar has just become busy at this time; choose another slot"


class TeacherNotPayable(Conflict):
    message = "This teacher cannot be booked until they have set up payouts"


class PaymentRefused(Conflict):
    """A paid checkout that could not pay for the booking: refunded in full, booking unchanged."""

    messages = {
        Reason.AMOUNT_MISMATCH: "This payment's amount is not the booking's price",
        Reason.CURRENCY_MISMATCH: "This payment's currency is not the booking's",
        Reason.OTHER_CHECKOUT: "This payment was not made through the booking's checkout",
    }

    def __init__(self, reason: Reason):
        super().__init__(
            f"{self.messages[reason]}; it is refunded in full and the booking is unchanged",
            data={"reason": reason.value},
        )
        self.reason = reason
