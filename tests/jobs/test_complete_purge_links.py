"""complete (Confirmed -> Completed after the end), purge (never-paid only), meeting links."""

from datetime import timedelta

import sqlalchemy as sa

from tests.jobs.helpers import (
    booked,
    confirmed,
    later,
    row,
    run,
    sandbox_since,
    set_columns,
    webhooks_off,
)
from tests.support import payments as pay
from tutorbook.bookings.lifecycle import Reason
from tutorbook.bookings.models import StatusHistory
from tutorbook.clock import utc_now
from tutorbook.jobs import tasks


def test_a_confirmed_session_becomes_completed_once_its_end_has_passed(api, c):
    b = confirmed(c, days=2)["b"]
    ends = row(api, b["id"]).ends_at
    assert run(api, "complete", now=ends - timedelta(seconds=1)).items == []
    result = run(api, "complete", now=ends)
    assert [(str(i.booking_id), i.outcome) for i in result.items] == [(b["id"], "completed")]
    assert row(api, b["id"]).status == 2
    assert pay.history(api.state.db, b["id"])[-1] == (1, 2, "session_ended")
    assert run(api, "complete", now=ends + timedelta(days=1)).items == []


def test_complete_leaves_pending_and_cancelled_bookings_alone(api, c):
    x = booked(c)
    assert run(api, "complete", now=later(minutes=60 * 24 * 30)).items == []
    assert row(api, x["b"]["id"]).status == 0


def test_a_complete_dry_run_changes_nothing(api, c):
    b = confirmed(c)["b"]
    result = run(api, "complete", now=later(minutes=60 * 24 * 7), dry_run=True)
    assert [i.outcome for i in result.items] == ["would_complete"]
    assert row(api, b["id"]).status == 1


def cancel_unpaid(api, booking_id, *, days_ago: int):
    """An abandoned checkout cancelled `days_ago` days ago."""
    import uuid

    api.state.services.tx_sync(
        tasks.cancel_pending,
        booking_id=uuid.UUID(booking_id),
        reason=Reason.PAYMENT_CANCELLED,
        job="test",
        now=utc_now(),
    )
    set_columns(api, booking_id, cancelled_at=utc_now() - timedelta(days=days_ago))


def history_rows(api, booking_id) -> int:
    import uuid

    with api.state.db.session_scope() as s:
        return s.scalar(
            sa.select(sa.func.count())
            .select_from(StatusHistory)
            .where(StatusHistory.session_id == uuid.UUID(booking_id))
        )


def test_purge_deletes_old_never_paid_cancellations_with_their_history(api, c):
    old, recent = booked(c, days=2)["b"], booked(c, days=3)["b"]
    cancel_unpaid(api, old["id"], days_ago=31)
    cancel_unpaid(api, recent["id"], days_ago=29)
    result = run(api, "purge", now=utc_now())
    assert [(str(i.booking_id), i.outcome) for i in result.items] == [(old["id"], "deleted")]
    assert row(api, old["id"]) is None and history_rows(api, old["id"]) == 0
    assert row(api, recent["id"]).status == 3


def test_purge_keeps_paid_history_however_old(api, c, sandbox):
    since = sandbox_since(sandbox)
    paid = confirmed(c, days=3)  # paid, then cancelled with a refund
    assert paid["p"]["client"].post(f"/api/Sessions/{paid['b']['id']}/cancel").json()["data"]["status"] == 3
    webhooks_off(sandbox)
    late = booked(c, days=4)  # never paid for the booking, but a late payment came and was refunded
    cancel_unpaid(api, late["b"]["id"], days_ago=0)
    booked(c, teacher=late["t"], days=4)  # the slot is taken meanwhile
    assert pay.pay(late["b"]["checkoutUrl"]).status_code == 303
    outcomes = {str(i.booking_id): i.outcome for i in run(api, "reconcile", since=since).items}
    assert outcomes[late["b"]["id"]] == "late_payment_refunded"
    for b in (paid["b"], late["b"]):
        set_columns(api, b["id"], cancelled_at=utc_now() - timedelta(days=400))
    assert run(api, "purge", now=utc_now()).items == []
    assert history_rows(api, paid["b"]["id"]) == 3 and history_rows(api, late["b"]["id"]) == 3
    assert len(pay.refunds(api.state.db, late["b"]["id"])) == 1


def test_a_purge_dry_run_deletes_nothing(api, c):
    b = booked(c)["b"]
    cancel_unpaid(api, b["id"], days_ago=45)
    result = run(api, "purge", now=utc_now(), dry_run=True)
    assert [i.outcome for i in result.items] == ["would_delete"]
    assert row(api, b["id"]) is not None and history_rows(api, b["id"]) == 2


def test_a_confirmed_booking_without_a_link_gets_one_from_the_job(api, c):
    b = confirmed(c)["b"]
    set_columns(
        api,
        b["id"],
        meeting_url=None,
        meeting_provider=None,
        meeting_attempts=1,
        meeting_error="retrying:timeout",
        meeting_next_attempt_at=utc_now() + timedelta(minutes=5),
    )
    assert run(api, "meeting-links", now=utc_now()).items == []  # backing off until the next attempt
    result = run(api, "meeting-links", now=utc_now() + timedelta(minutes=6))
    assert [i.outcome for i in result.items] == ["created"]
    booking = row(api, b["id"])
    assert booking.meeting_url.startswith("https://meet.jit.si/") and booking.status == 1
