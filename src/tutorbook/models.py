"""Import every model so Base.metadata is complete (Alembic and throwaway test schemas)."""

from tutorbook.accounts.models import LoginFailure, PasswordReset, Student, User  # noqa: F401
from tutorbook.bookings.models import AdminAction, Booking, StatusHistory  # noqa: F401
from tutorbook.calendars.models import BusyPeriod, TeacherCalendar  # noqa: F401
from tutorbook.credits.models import CreditEntry, CreditLot, CreditPackage, CreditPurchase  # noqa: F401
from tutorbook.db import Base  # noqa: F401
from tutorbook.jobs.models import JobRunRecord, JobScheduleRecord  # noqa: F401
from tutorbook.notifications.models import DevMail, Notification  # noqa: F401
from tutorbook.payments.models import Refund, StripeEvent  # noqa: F401
from tutorbook.series.models import Occurrence, Series  # noqa: F401
from tutorbook.teachers.models import AvailabilityWindow, TeacherProfile, TimeOff  # noqa: F401
from tutorbook.versions import CacheVersion  # noqa: F401
