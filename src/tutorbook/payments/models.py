"""The Stripe event inbox: each event handled once. (Refunds are the bookings' outbox:
`tutorbook.bookings.models.Refund`, re-exported here.)"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tutorbook.bookings.models import Refund
from tutorbook.db import Base, UTCDateTime

__all__ = ["Refund", "StripeEvent"]


class StripeEvent(Base):
    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(sa.String(40))
