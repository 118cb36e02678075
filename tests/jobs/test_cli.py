"""`tutorbook jobs run NAME [--dry-run] [--json]`, `tutorbook report ... [--json]`, in process."""

import json
import logging
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from tests.jobs.helpers import booked, paid_at_stripe, row, set_columns, webhooks_off
from tests.support import payments as pay
from tutorbook import cli
from tutorbook.clock import utc_now
from tutorbook.config import get_settings


@pytest.fixture
def tutorbook(api, sandbox, tmp_path, monkeypatch):
    """Run the `tutorbook` command against the test database and sandbox: (exit code, stdout)."""
    env = {
        "DATABASE_URL": api.state.db.url,
        "SANDBOX_URL": sandbox.base_url,
        "VAR_DIR": str(tmp_path),
        "JWT_SECRET": "test-secret-" + "x" * 32,
        "STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(f"TUTORBOOK_{key}", value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()

    def invoke(*args: str):
        result = CliRunner().invoke(cli.app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout

    yield invoke
    get_settings.cache_clear()
    root.handlers[:], root.level = handlers, level


def test_jobs_run_dry_run_says_what_would_change_and_changes_nothing(api, c, sandbox, tutorbook):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    set_columns(api, b["id"], checkout_expires_at=utc_now() - timedelta(minutes=1))
    code, out = tutorbook("jobs", "run", "expire", "--dry-run", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["dryRun"] is True and data["counts"] == {"would_cancel": 1}
    assert data["items"][0]["bookingId"] == b["id"] and data["items"][0]["checkoutId"] == b["stripeSessionId"]
    assert row(api, b["id"]).status == 0 and pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "open"

    code, out = tutorbook("jobs", "run", "expire")
    assert code == 0 and "checkout_expired" in out and b["id"] in out
    assert row(api, b["id"]).status == 3 and pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "expired"


def test_jobs_run_refuses_an_unknown_job_and_jobs_list_shows_the_intervals(tutorbook):
    code, _ = tutorbook("jobs", "run", "nope")
    assert code == 2
    code, out = tutorbook("jobs", "list")
    assert code == 0 and "TUTORBOOK_JOB_EXPIRE_INTERVAL_S" in out and "reconcile" in out


def test_report_orphaned_lists_old_unpaid_pending_bookings(api, c, tutorbook):
    old, fresh = booked(c, days=2)["b"], booked(c, days=3)["b"]
    set_columns(api, old["id"], created_at=utc_now() - timedelta(minutes=61))
    code, out = tutorbook("report", "orphaned", "--json")
    data = json.loads(out)
    assert code == 1 and data["count"] == 1 and data["thresholdMinutes"] == 60
    assert [i["id"] for i in data["items"]] == [old["id"]] and data["items"][0]["statusName"] == "Pending"
    code, out = tutorbook("report", "orphaned")
    assert code == 1 and old["id"] in out and fresh["id"] not in out and "1 orphaned sessions" in out
    set_columns(api, old["id"], checkout_expires_at=utc_now() - timedelta(minutes=30))  # consistent with its age
    assert tutorbook("jobs", "run", "expire")[0] == 0
    assert tutorbook("report", "orphaned", "--json")[0] == 0


def test_report_invalid_statuses_is_empty_and_exits_0(api, tutorbook):
    code, out = tutorbook("report", "invalid-statuses", "--json")
    assert (code, json.loads(out)) == (0, {"count": 0, "items": []})
    assert tutorbook("report", "invalid-statuses")[1].strip() == "0 bookings with a status outside 0-3"


def test_report_reconcile_shows_a_lost_payment_then_0_after_the_job(api, c, sandbox, tutorbook):
    webhooks_off(sandbox)
    b = paid_at_stripe(c)["b"]
    # The window is the sandbox's whole session here, so only this booking's line is checked.
    code, out = tutorbook("report", "reconcile", "--json", "--since-hours", "0.02")
    mine = [i for i in json.loads(out)["items"] if i["bookingId"] == b["id"]]
    assert code == 1 and [(i["kind"], i["outcome"]) for i in mine] == [("paid_not_confirmed", "paid_not_confirmed")]
    assert row(api, b["id"]).status == 0
    code, out = tutorbook("jobs", "run", "reconcile", "--json", "--since-hours", "0.02")
    assert code == 0 and row(api, b["id"]).status == 1
    code, out = tutorbook("report", "reconcile", "--json", "--since-hours", "0.02")
    assert [i for i in json.loads(out)["items"] if i["bookingId"] == b["id"]] == []


def test_report_reconcile_lists_a_payment_at_another_price_until_the_job_refunds_it(api, c, sandbox, tutorbook):
    webhooks_off(sandbox)
    b = booked(c)["b"]
    set_columns(api, b["id"], stripe_session_id=None, checkout_url=None)  # its checkout was never stored
    cs = pay.other_checkout(sandbox, booking_id=b["id"], amount=1234)
    assert pay.pay(cs["url"]).status_code == 303
    code, out = tutorbook("report", "reconcile", "--since-hours", "0.02")
    mine = [line for line in out.splitlines() if b["id"] in line]
    assert code == 1 and len(mine) == 1 and "amount_mismatch" in mine[0] and cs["id"] in mine[0]
    assert pay.refunds(api.state.db, b["id"]) == []
    assert tutorbook("jobs", "run", "reconcile", "--since-hours", "0.02")[0] == 0
    [refund] = pay.refunds(api.state.db, b["id"])
    assert (refund.amount, refund.reason, refund.status) == (1234, "amount_mismatch", "succeeded")
    code, out = tutorbook("report", "reconcile", "--json", "--since-hours", "0.02")
    assert [i for i in json.loads(out)["items"] if i["bookingId"] == b["id"]] == []
    assert row(api, b["id"]).status == 0
