"""The expire job: abandoned checkouts are closed at Stripe and their bookings Cancelled; a
checkout that was paid after all is fulfilled instead. Time is passed in: `later()`."""

from datetime import timedelta

from tests.jobs.helpers import booked, later, paid_at_stripe, row, run, set_columns, webhooks_off
from tests.support import payments as pay
from tests.support.servers import http_post, wait_for
from tutorbook.bookings import repository as repo
from tutorbook.clock import utc_now
from tutorbook.jobs import tasks


def test_a_stale_pending_booking_is_cancelled_and_its_checkout_expired_at_the_sandbox(api, c, sandbox):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    result = run(api, "expire", now=later())
    assert [(str(i.booking_id), i.outcome) for i in result.items] == [(b["id"], "checkout_expired")]
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "expired"
    booking = row(api, b["id"])
    assert (booking.status, booking.cancellation_reason) == (3, "checkout_expired")
    assert pay.history(api.state.db, b["id"]) == [(None, 0, "booked"), (0, 3, "checkout_expired")]
    assert pay.pay(b["checkoutUrl"]).status_code != 303  # the abandoned page can no longer take money


def test_the_cancellation_is_recorded_with_the_job_as_actor_and_counted(api, c, sandbox):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    before = api.state.metrics.value("tutorbook_jobs_items_total", job="expire", outcome="checkout_expired")
    runs_before = api.state.metrics.value("tutorbook_jobs_runs_total", job="expire", result="ok")
    run(api, "expire", now=later())
    with api.state.db.session_scope() as s:
        assert repo.history(s, row(api, b["id"]).id)[-1].actor == "job:expire"
    after = api.state.metrics.value("tutorbook_jobs_items_total", job="expire", outcome="checkout_expired")
    assert after == before + 1
    assert api.state.metrics.value("tutorbook_jobs_runs_total", job="expire", result="ok") == runs_before + 1


def test_a_checkout_still_within_its_time_is_left_alone(api, c, sandbox):
    b = booked(c)["b"]
    assert run(api, "expire", now=utc_now()).items == []
    assert row(api, b["id"]).status == 0
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "open"


def test_a_checkout_stripe_expired_itself_while_the_webhook_was_lost_is_cancelled(api, c, sandbox):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    http_post(
        f"{sandbox.base_url}/v1/checkout/sessions/{b['stripeSessionId']}/expire",
        headers={"Authorization": "Bearer sk_test_sandbox"},
    ).raise_for_status()
    result = run(api, "expire", now=later())
    assert [i.outcome for i in result.items] == ["checkout_expired"]
    assert row(api, b["id"]).status == 3


def test_a_stale_booking_whose_checkout_was_paid_is_confirmed_not_cancelled(api, c, sandbox):
    webhooks_off(sandbox)
    b = paid_at_stripe(c)["b"]
    assert row(api, b["id"]).status == 0  # the webhook was lost and the success page never called
    result = run(api, "expire", now=later())
    assert [i.outcome for i in result.items] == ["confirmed"]
    booking = row(api, b["id"])
    assert booking.status == 1 and booking.paid_at and booking.meeting_url
    assert pay.history(api.state.db, b["id"])[-1] == (0, 1, "paid")


def test_a_booking_that_never_got_a_checkout_is_cancelled_as_checkout_failed(api, c, sandbox):
    b = booked(c)["b"]
    set_columns(api, b["id"], stripe_session_id=None, checkout_url=None)  # as if we crashed before Stripe
    result = run(api, "expire", now=later())
    assert [i.outcome for i in result.items] == ["checkout_failed"]
    assert row(api, b["id"]).cancellation_reason == "checkout_failed"
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "open"  # not ours to touch


def test_a_booking_that_never_got_a_checkout_is_cancelled_once_its_request_is_surely_over(api, c, sandbox):
    b = booked(c)["b"]
    set_columns(api, b["id"], stripe_session_id=None, checkout_url=None)  # as if we crashed before Stripe
    booking = row(api, b["id"])
    grace = tasks.unopened_grace(api.state.settings)
    assert grace == timedelta(seconds=5 * (0 + 2) + 60)  # the tests' 5 s timeout, no retries, the margin
    assert run(api, "expire", now=booking.created_at + grace - timedelta(seconds=1)).items == []
    result = run(api, "expire", now=booking.created_at + grace)  # not the checkout's 31 minutes
    assert [(str(i.booking_id), i.outcome) for i in result.items] == [(b["id"], "checkout_failed")]
    assert booking.created_at + grace < booking.checkout_expires_at - timedelta(minutes=25)
    assert row(api, b["id"]).status == 3


def test_a_stale_booking_whose_checkout_was_paid_at_another_price_is_refunded_and_cancelled(api, c, sandbox):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    cs = pay.other_checkout(sandbox, booking_id=b["id"], amount=100)
    set_columns(api, b["id"], stripe_session_id=cs["id"], checkout_url=cs["url"])  # its checkout, wrongly priced
    assert pay.pay(cs["url"]).status_code == 303
    result = run(api, "expire", now=later())
    assert [i.outcome for i in result.items] == ["amount_mismatch, checkout_expired"]
    wait_for(lambda: [r.status for r in pay.refunds(api.state.db, b["id"])] == ["succeeded"], message="refund")
    paid = pay.sandbox_session(sandbox, cs["id"])
    assert pay.refunded_at_stripe(sandbox, paid["payment_intent"]) == 100
    booking = row(api, b["id"])
    assert (booking.status, booking.paid_at, booking.cancellation_reason) == (3, None, "checkout_expired")
    assert pay.history(api.state.db, b["id"]) == [
        (None, 0, "booked"),
        (0, 0, "amount_mismatch"),
        (0, 3, "checkout_expired"),
    ]


def test_with_stripe_down_the_booking_stays_pending_and_the_next_run_settles_it(api, c, sandbox):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        result = run(api, "expire", now=later())
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert [i.outcome for i in result.items] == ["stripe_unavailable"]
    assert row(api, b["id"]).status == 0  # it may still be paid: never cancelled blind
    assert [i.outcome for i in run(api, "expire", now=later()).items] == ["checkout_expired"]


def test_running_twice_changes_nothing_the_second_time(api, c, sandbox):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    run(api, "expire", now=later())
    assert run(api, "expire", now=later()).items == []
    assert len(pay.history(api.state.db, b["id"])) == 2


def test_a_dry_run_says_what_would_change_and_changes_nothing(api, c, sandbox):
    webhooks_off(sandbox)
    stale, paid = booked(c)["b"], paid_at_stripe(c, days=3)["b"]
    result = run(api, "expire", now=later(), dry_run=True)
    assert result.dry_run and sorted(i.outcome for i in result.items) == [
        "would_cancel",
        "would_fulfil",
    ]
    for b in (stale, paid):
        assert row(api, b["id"]).status == 0 and len(pay.history(api.state.db, b["id"])) == 1
    assert pay.sandbox_session(sandbox, stale["stripeSessionId"])["status"] == "open"


def test_one_failing_item_is_recorded_as_an_error_and_the_run_goes_on():
    from tutorbook.jobs.result import JobResult

    result = JobResult("expire")

    def boom():
        raise RuntimeError("database hiccup")

    result.attempt(None, boom)
    result.attempt(None, lambda: "checkout_expired")
    assert result.counts() == {"checkout_expired": 1, "error": 1}
