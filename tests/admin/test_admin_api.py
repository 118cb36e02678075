"""/api/Admin: the verification reports, cleanup and reconcile; admins only, in the envelope."""

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.jobs.helpers import (
    admin_client,
    booked,
    paid_at_stripe,
    row,
    sandbox_since,
    set_columns,
    webhooks_off,
)
from tests.support import payments as pay
from tutorbook.admin import reports
from tutorbook.clock import utc_now

ROUTES = [
    ("GET", "/api/Admin/reports/orphaned-sessions"),
    ("GET", "/api/Admin/reports/invalid-statuses"),
    ("POST", "/api/Admin/cleanup"),
    ("POST", "/api/Admin/reconcile?dryRun=true"),
]


@pytest.fixture
def admin(api, c):
    with admin_client(api, c) as client:
        yield client


def test_only_admins_may_use_the_admin_routes(api, c, admin):
    parent = booked(c)["p"]
    for method, path in ROUTES:
        assert c.request(method, path).status_code == 401
        r = parent["client"].request(method, path)
        assert r.status_code == 403 and r.json()["success"] is False
        assert admin.request(method, path).status_code == 200


def test_orphaned_sessions_are_pending_unpaid_and_older_than_the_threshold(api, c, admin):
    old, fresh = booked(c, days=2)["b"], booked(c, days=3)["b"]
    set_columns(api, old["id"], created_at=utc_now() - timedelta(minutes=90))
    body = admin.get("/api/Admin/reports/orphaned-sessions").json()
    assert body["success"] is True and body["data"]["thresholdMinutes"] == 60 and body["data"]["count"] == 1
    [item] = body["data"]["items"]
    assert item["id"] == old["id"] and item["status"] == 0 and item["statusName"] == "Pending"
    assert item["stripeSessionId"] == old["stripeSessionId"] and item["paidAt"] is None
    assert item["createdAt"].endswith("Z")
    wider = admin.get("/api/Admin/reports/orphaned-sessions", params={"olderThanMinutes": 120}).json()["data"]
    assert wider["count"] == 0
    assert fresh["id"] not in str(body)


def test_the_invalid_status_report_is_empty_because_the_database_refuses_such_rows(api, c, admin):
    body = admin.get("/api/Admin/reports/invalid-statuses").json()
    assert body == {"success": True, "message": "OK", "data": {"count": 0, "items": []}}
    b = booked(c)["b"]
    with pytest.raises(sa.exc.IntegrityError):
        set_columns(api, b["id"], status=4)
    assert row(api, b["id"]).status == 0


def test_the_invalid_status_query_finds_bad_rows_where_no_constraint_stops_them(api):
    """The report must be able to fail: the same query over a table without the CHECK."""
    probe = sa.Table(
        "invalid_status_probe",
        sa.MetaData(),
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("status", sa.SmallInteger, nullable=True),
    )
    ids = {status: uuid.uuid4() for status in (0, 1, 2, 3, 4, -1, None)}
    engine = api.state.db.engine
    probe.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(probe.insert(), [{"id": i, "status": s} for s, i in ids.items()])
            found = reports.invalid_statuses(conn, table=probe)
    finally:
        probe.drop(engine)
    assert sorted(found, key=lambda r: str(r["status"])) == sorted(
        [
            {"id": ids[4], "status": 4, "count": 1},
            {"id": ids[-1], "status": -1, "count": 1},
            {"id": ids[None], "status": None, "count": 1},
        ],
        key=lambda r: str(r["status"]),
    )


def test_cleanup_expires_abandoned_checkouts_and_purges_old_ones(api, c, sandbox, admin):
    webhooks_off(sandbox)
    stale, gone = booked(c, days=2)["b"], booked(c, days=3)["b"]
    set_columns(api, stale["id"], checkout_expires_at=utc_now() - timedelta(minutes=1))
    set_columns(
        api,
        gone["id"],
        status=3,
        cancellation_reason="payment_cancelled",
        cancelled_at=utc_now() - timedelta(days=31),
    )
    dry = admin.post("/api/Admin/cleanup", params={"dryRun": "true"}).json()
    assert dry["message"] == "Dry run: nothing changed"
    assert [(j["job"], j["counts"]) for j in dry["data"]] == [
        ("expire", {"would_cancel": 1}),
        ("purge", {"would_delete": 1}),
    ]
    assert row(api, stale["id"]).status == 0 and row(api, gone["id"]) is not None
    body = admin.post("/api/Admin/cleanup").json()
    assert body["success"] is True
    assert [(j["job"], j["counts"]) for j in body["data"]] == [
        ("expire", {"checkout_expired": 1}),
        ("purge", {"deleted": 1}),
    ]
    assert body["data"][0]["items"][0]["bookingId"] == stale["id"]
    assert row(api, stale["id"]).status == 3 and row(api, gone["id"]) is None
    assert pay.sandbox_session(sandbox, stale["stripeSessionId"])["status"] == "expired"


def test_reconcile_reports_then_repairs_a_lost_payment(api, c, sandbox, admin):
    since = sandbox_since(sandbox).isoformat()
    webhooks_off(sandbox)
    b = paid_at_stripe(c)["b"]
    dry = admin.post("/api/Admin/reconcile", params={"dryRun": "true", "since": since}).json()
    assert dry["data"]["mismatches"] == 1 and dry["data"]["items"][0]["kind"] == "paid_not_confirmed"
    assert row(api, b["id"]).status == 0
    confirmed_before = api.state.metrics.value("tutorbook_jobs_items_total", job="reconcile", outcome="confirmed")
    body = admin.post("/api/Admin/reconcile", params={"since": since}).json()
    assert body["message"] == "1 mismatches, 0 unsettled"
    assert body["data"]["items"] == [
        {
            "bookingId": b["id"],
            "outcome": "confirmed",
            "kind": "paid_not_confirmed",
            "checkoutId": b["stripeSessionId"],
            "refundId": None,
        }
    ]
    assert row(api, b["id"]).status == 1
    again = admin.post("/api/Admin/reconcile", params={"dryRun": "true", "since": since}).json()
    assert again["data"]["mismatches"] == 0 and again["message"] == "0 mismatches, 0 unsettled"
    confirmed = api.state.metrics.value("tutorbook_jobs_items_total", job="reconcile", outcome="confirmed")
    assert confirmed == confirmed_before + 1  # the dry run counts nothing


def test_reconcile_with_stripe_down_is_a_502_in_the_envelope(api, sandbox, admin):
    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        r = admin.post("/api/Admin/reconcile")
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert r.status_code == 502 and r.json()["success"] is False
