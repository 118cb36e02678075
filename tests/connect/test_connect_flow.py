"""Teachers get paid (Stripe Connect), through the live app, the real SDK and the sandbox:
onboarding, destination charges with the platform fee, refunds that reverse the teacher's
share, teachers not yet enabled, Connect events out of order and twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from tests import factories as f
from tests.connect.helpers import charge_of, destination_checkout, onboard, stripe_get
from tests.jobs.helpers import sandbox_since, set_columns
from tests.payments.test_late_payments_and_refunds import cancel_locally
from tests.support import payments as pay
from tests.support import webhooks as wh
from tests.support.servers import wait_for
from tutorbook import jobs
from tutorbook.admin import reports
from tutorbook.clock import utc_now
from tutorbook.teachers import payouts


def test_onboarding_takes_a_teacher_to_enabled(api, c):
    t = f.teacher(c)
    before = t["client"].get("/api/Teachers/me/payouts").json()["data"]
    assert before["connected"] is False and before["enabled"] is False
    status = onboard(t)
    assert status["connected"] and status["chargesEnabled"] and status["payoutsEnabled"]
    assert status["enabled"] and status["currentlyDue"] == []
    # A second onboarding keeps the one account.
    again = t["client"].post("/api/Teachers/me/payouts/onboard").json()["data"]["url"]
    assert status["accountId"] in again


def test_finishing_later_leaves_payouts_disabled_and_the_teacher_unpaid_by_destination(api, c):
    t, p = f.teacher(c), f.parent(c)
    status = onboard(t, choice="later")
    assert status["chargesEnabled"] and not status["payoutsEnabled"] and status["currentlyDue"] == ["external_account"]
    b = f.book(p, t).json()["data"]
    assert pay.booking_row(api.state.db, b["id"]).payout_destination is None


def soon() -> str:
    """A start three hours ahead on a 5-minute mark (within the 24 hours of a late cancel)."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3)
    return (start - timedelta(minutes=start.minute % 5)).isoformat().replace("+00:00", "Z")


def paid_booking(api, c, sandbox, *, rate=6000, days=3, starts_at=None, late_refund_percent=None):
    t, p = f.teacher(c, rate=rate), f.parent(c)
    onboard(t)
    if late_refund_percent is not None:  # the teacher's terms, stored on the booking when it is paid
        terms = {"fullRefundHours": 24, "lateRefundPercent": late_refund_percent}
        terms |= {"rescheduleDeadlineHours": 24, "maxReschedules": 2}
        assert t["client"].put("/api/Teachers/me/policy", json=terms).status_code == 200
    b = f.book(p, t, starts_at=starts_at or f.slot(days=days)).json()["data"]
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    confirmed = p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}").json()["data"]
    assert confirmed["status"] == 1
    row = wait_for(lambda: (r := pay.booking_row(api.state.db, b["id"])).stripe_transfer_id and r, message="split")
    return t, p, b, row


def test_a_destination_charge_transfers_the_whole_amount_and_takes_the_fee_from_it(api, c, sandbox):
    t, p, b, row = paid_booking(api, c, sandbox, rate=3333)
    charge = charge_of(sandbox, row.stripe_payment_intent_id)
    # 15 % of 3,333 = 499.95 -> 500 (half up); the teacher gets 2,833.
    assert row.platform_fee_amount == 500 and row.payout_destination == charge["transfer"]["destination"]
    assert (charge["transfer"]["amount"], charge["application_fee"]["amount"]) == (3333, 500)
    assert charge["application_fee"]["account"] == row.payout_destination
    assert (row.stripe_transfer_id, row.stripe_application_fee_id) == (
        charge["transfer"]["id"],
        charge["application_fee"]["id"],
    )
    assert row.stripe_charge_id == charge["id"] and row.transfer_amount == 3333
    earned = t["client"].get("/api/Teachers/me/earnings").json()["data"]
    [session] = earned["sessions"]
    assert (session["gross"], session["fee"], session["net"], session["refunded"]) == (3333, 500, 2833, 0)
    assert session["paidOut"] and session["settled"]
    assert earned["months"][0]["net"] == 2833


def test_a_full_refund_reverses_the_transfer_and_refunds_the_fee(api, c, sandbox):
    t, p, b, _ = paid_booking(api, c, sandbox, rate=6000, days=3)
    r = p["client"].post(f"/api/Sessions/{b['id']}/cancel")
    assert r.status_code == 200, r.text
    row = wait_for(
        lambda: (x := pay.booking_row(api.state.db, b["id"])).transfer_reversed_amount == 6000 and x, message="reversal"
    )
    row = wait_for(
        lambda: (x := pay.booking_row(api.state.db, b["id"])).fee_refunded_amount == 900 and x, message="fee"
    )
    assert row.refunded_amount == 6000
    charge = charge_of(sandbox, row.stripe_payment_intent_id)
    assert charge["transfer"]["amount_reversed"] == 6000 and charge["application_fee"]["amount_refunded"] == 900
    [session] = t["client"].get("/api/Teachers/me/earnings").json()["data"]["sessions"]
    assert (session["net"], session["fee"], session["refunded"]) == (0, 0, 6000)


def test_with_no_platform_fee_the_charge_has_no_fee_and_its_refund_asks_for_none(api, c, sandbox, monkeypatch):
    # Stripe refuses refund_application_fee on a charge without an application fee (the sandbox
    # does too): a 0 % platform fee sends no application_fee_amount, and the refund reverses the
    # transfer only.
    monkeypatch.setattr(api.state.services.settings, "platform_fee_percent", 0)
    t, p, b, row = paid_booking(api, c, sandbox, rate=6000, days=3)
    charge = charge_of(sandbox, row.stripe_payment_intent_id)
    assert charge["application_fee"] is None and charge["transfer"]["amount"] == 6000
    assert p["client"].post(f"/api/Sessions/{b['id']}/cancel").status_code == 200
    row = wait_for(
        lambda: (x := pay.booking_row(api.state.db, b["id"])).transfer_reversed_amount == 6000 and x, message="reversal"
    )
    assert (row.refunded_amount, row.fee_refunded_amount) == (6000, 0)


def test_a_partial_refund_reverses_in_proportion(api, c, sandbox):
    t, p, b, _ = paid_booking(api, c, sandbox, rate=6001, starts_at=soon(), late_refund_percent=50)
    r = p["client"].post(f"/api/Sessions/{b['id']}/cancel")
    assert r.status_code == 200, r.text
    row = wait_for(lambda: (x := pay.booking_row(api.state.db, b["id"])).refunded_amount and x, message="refund")
    row = wait_for(lambda: (x := pay.booking_row(api.state.db, b["id"])).transfer_reversed_amount and x, message="rev")
    refunded = row.refunded_amount
    assert 0 < refunded < 6001
    fee = row.platform_fee_amount
    assert row.transfer_amount == 6001 and row.transfer_reversed_amount == refunded  # the transfer is the whole amount
    back = (2 * fee * refunded + 6001) // (2 * 6001)  # the fee in proportion, rounded half up
    row = wait_for(
        lambda: (x := pay.booking_row(api.state.db, b["id"])).fee_refunded_amount == back and x, message="fee"
    )
    [session] = t["client"].get("/api/Teachers/me/earnings").json()["data"]["sessions"]
    assert session["net"] + session["fee"] == session["gross"] - session["refunded"]
    assert (session["net"], session["fee"]) == (6001 - refunded - (fee - back), fee - back)


def test_a_late_payment_refund_reverses_the_transfer_too(api, c, sandbox):
    t, p, other = f.teacher(c, rate=4000), f.parent(c), f.parent(c)
    onboard(t)
    b = f.book(p, t).json()["data"]
    cancel_locally(api, b["id"])
    assert f.book(other, t, starts_at=b["startsAt"]).status_code == 201
    assert pay.pay(b["checkoutUrl"]).status_code == 303
    row = wait_for(
        lambda: (x := pay.booking_row(api.state.db, b["id"])).transfer_reversed_amount == 4000 and x, message="rev"
    )
    row = wait_for(
        lambda: (x := pay.booking_row(api.state.db, b["id"])).fee_refunded_amount == 600 and x, message="fee"
    )
    assert row.refunded_amount == 4000


def test_a_refused_destination_charge_is_refunded_with_the_teachers_share(api, c, sandbox):
    """A payment through another checkout than the booking's is refunded in full; when that
    payment was a destination charge too, the refund pulls the teacher's share back and returns
    the fee (the refund row names that payment, not the booking's)."""
    t, p = f.teacher(c, rate=6000), f.parent(c)
    status = onboard(t)
    b = f.book(p, t).json()["data"]
    cs = destination_checkout(sandbox, booking_id=b["id"], destination=status["accountId"], amount=6000, fee=900)
    assert pay.pay(cs["url"]).status_code == 303  # the sandbox delivers checkout.session.completed
    wait_for(lambda: [r.status for r in pay.refunds(api.state.db, b["id"])] == ["succeeded"], message="refund")
    [refund] = pay.refunds(api.state.db, b["id"])
    intent = pay.sandbox_session(sandbox, cs["id"])["payment_intent"]
    assert (refund.reason, refund.payment_intent_id, refund.amount) == ("other_checkout", intent, 6000)
    charge = charge_of(sandbox, intent)
    assert charge["amount_refunded"] == 6000
    assert charge["transfer"]["amount_reversed"] == 6000 and charge["application_fee"]["amount_refunded"] == 900
    row = pay.booking_row(api.state.db, b["id"])  # the booking's own payment (none yet) is untouched
    assert (row.status, row.stripe_payment_intent_id, row.refunded_amount) == (0, None, 0)
    assert (row.stripe_transfer_id, row.transfer_reversed_amount, row.fee_refunded_amount) == (None, 0, 0)


def test_with_no_platform_fee_a_refund_reverses_the_transfer_and_asks_for_no_fee_refund(api, c, sandbox):
    """0 %: the destination charge has no application fee, and Stripe refuses refund_application_fee
    on a charge without one; the refund still pulls the teacher's share back."""
    settings = api.state.services.settings
    settings.platform_fee_percent = 0
    try:
        t, p, b, row = paid_booking(api, c, sandbox, rate=6000, days=3)
        assert row.platform_fee_amount is None or row.platform_fee_amount == 0
        assert p["client"].post(f"/api/Sessions/{b['id']}/cancel").status_code == 200
        row = wait_for(
            lambda: (x := pay.booking_row(api.state.db, b["id"])).transfer_reversed_amount == 6000 and x, message="rev"
        )
        assert row.refunded_amount == 6000
        [refund] = pay.refunds(api.state.db, b["id"])
        assert refund.status == "succeeded"
        [session] = t["client"].get("/api/Teachers/me/earnings").json()["data"]["sessions"]
        assert (session["net"], session["fee"]) == (0, 0)
    finally:
        settings.platform_fee_percent = 15


@pytest.mark.parametrize("required", [False, True])
def test_a_teacher_without_payouts(api, c, sandbox, required):
    settings = api.state.services.settings
    settings.require_teacher_payouts = required
    try:
        t, p = f.teacher(c), f.parent(c)
        r = f.book(p, t)
        if required:
            assert r.status_code == 409, r.text
            assert r.json()["success"] is False and "payouts" in r.json()["message"]
            onboard(t)
            r = f.book(p, t)
            assert r.status_code == 201 and pay.booking_row(api.state.db, r.json()["data"]["id"]).payout_destination
        else:
            assert r.status_code == 201, r.text
            b = r.json()["data"]
            assert pay.pay(b["checkoutUrl"]).status_code == 303
            row = wait_status(api, b["id"])
            assert row.payout_destination is None and row.stripe_transfer_id is None
            charge = charge_of(sandbox, row.stripe_payment_intent_id)
            assert charge.get("transfer") is None and charge.get("application_fee") is None
            [session] = t["client"].get("/api/Teachers/me/earnings").json()["data"]["sessions"]
            assert (session["paidOut"], session["net"], session["fee"]) == (False, 0, session["gross"])
    finally:
        settings.require_teacher_payouts = False


def wait_status(api, booking_id, status=1):
    return wait_for(lambda: (r := pay.booking_row(api.state.db, booking_id)).status == status and r, message="status")


def test_account_events_out_of_order_and_twice(api, c, sandbox):
    t = f.teacher(c)
    status = onboard(t, choice="later")
    account = stripe_get(sandbox, f"/v1/accounts/{status['accountId']}")
    older = wh.event("account.updated", dict(account, payouts_enabled=False))
    newer = wh.event(
        "account.updated",
        dict(account, payouts_enabled=True, requirements=dict(account["requirements"], currently_due=[])),
    )
    newer["created"] = older["created"] = 4_070_908_800  # 2099: after the state read when returning
    newer["created"] += 60
    base = api.state.base_url
    assert wh.post(base, newer).json()["data"] == "account_updated"
    assert wh.post(base, older).json()["data"] == "account_stale"
    assert wh.post(base, newer).json()["data"] == "duplicate"
    with api.state.db.session_scope() as s:
        held = payouts.status(s, teacher_id=uuid.UUID(t["user"]["id"]))
    assert held.payouts_enabled is True and held.currently_due == []


@pytest.mark.parametrize(
    "type_,broken",
    [
        pytest.param("account.updated", {"charges_enabled": "true"}, id="account-flag-as-text"),
        pytest.param("account.updated", {"requirements": {"currently_due": "external_account"}}, id="due-not-list"),
        pytest.param("transfer.reversed", {"amount_reversed": "5100"}, id="transfer-amount-as-text"),
        pytest.param("transfer.created", {"source_transaction": {"id": 1}}, id="transfer-source-object"),
        pytest.param("application_fee.refunded", {"amount_refunded": 2**40}, id="fee-over-int32"),
    ],
)
def test_a_malformed_connect_event_is_a_400_that_changes_nothing(api, c, sandbox, type_, broken):
    t, p, b, row = paid_booking(api, c, sandbox, rate=6000)
    charge = charge_of(sandbox, row.stripe_payment_intent_id)
    objects = {
        "account.updated": stripe_get(sandbox, f"/v1/accounts/{row.payout_destination}"),
        "transfer.reversed": charge["transfer"],
        "transfer.created": charge["transfer"],
        "application_fee.refunded": charge["application_fee"],
    }
    event = wh.event(type_, dict(objects[type_], **broken))
    r = wh.post(api.state.base_url, event)
    assert r.status_code == 400 and r.json()["success"] is False, r.text
    after = pay.booking_row(api.state.db, b["id"])
    assert (after.transfer_amount, after.transfer_reversed_amount, after.fee_refunded_amount) == (6000, 0, 0)
    with api.state.db.session_scope() as s:
        assert payouts.status(s, teacher_id=uuid.UUID(t["user"]["id"])).charges_enabled is True


def test_an_account_event_from_outside_the_years_the_app_accepts_is_a_400(api, c):
    t = f.teacher(c)
    status = onboard(t, choice="later")
    event = wh.event("account.updated", {"id": status["accountId"], "object": "account", "payouts_enabled": True})
    event["created"] = 10**12  # would overflow a datetime
    assert wh.post(api.state.base_url, event).status_code == 400
    assert t["client"].get("/api/Teachers/me/payouts").json()["data"]["payoutsEnabled"] is False


def test_transfer_and_fee_events_in_any_order_keep_the_newest_totals(api, c, sandbox):
    t, p, b, row = paid_booking(api, c, sandbox, rate=6000)
    charge = charge_of(sandbox, row.stripe_payment_intent_id)
    transfer, fee = charge["transfer"], charge["application_fee"]
    base = api.state.base_url
    newer = wh.event("transfer.reversed", dict(transfer, amount_reversed=2550))
    older = wh.event("transfer.reversed", dict(transfer, amount_reversed=1000))
    assert wh.post(base, newer).json()["data"] == "transfer_recorded"
    assert wh.post(base, older).json()["data"] == "transfer_recorded"
    assert wh.post(base, newer).json()["data"] == "duplicate"
    assert wh.post(base, wh.event("application_fee.refunded", dict(fee, amount_refunded=450))).status_code == 200
    row = pay.booking_row(api.state.db, b["id"])
    assert (row.transfer_reversed_amount, row.fee_refunded_amount) == (2550, 450)


def test_reconcile_finds_a_refund_that_reversed_nothing_and_records_a_missing_split(api, c, sandbox):
    since = sandbox_since(sandbox)  # the sandbox is shared by the session: only this test's checkouts
    t, p, b, row = paid_booking(api, c, sandbox, rate=6000)
    # A refund made at Stripe without reverse_transfer (say, in the Dashboard): the platform pays it all.
    client = stripe.StripeClient(
        "sk_test_sandbox",
        base_addresses={"api": sandbox.base_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )
    refund = client.v1.refunds.create(params={"payment_intent": row.stripe_payment_intent_id, "amount": 1000})
    wait_for(lambda: pay.booking_row(api.state.db, b["id"]).refunded_amount == 1000, message="charge.refunded")
    # And a paid destination charge whose split was never recorded (the follow-up was lost).
    _, _, b2, _ = paid_booking(api, c, sandbox, rate=5000)
    set_columns(api, b2["id"], stripe_transfer_id=None, stripe_application_fee_id=None, transfer_amount=0)
    found = reports.reconciliation(api.state.services, now=utc_now(), since=since)
    kinds = {(str(i.booking_id), i.kind, i.refund_id) for i in found.mismatches}
    assert (b["id"], "refund_without_reversal", refund.id) in kinds
    assert (b2["id"], "split_missing", None) in kinds
    assert pay.booking_row(api.state.db, b2["id"]).stripe_transfer_id is None  # the report changes nothing
    repaired = jobs.run("reconcile", api.state.services, now=utc_now(), since=since)
    assert any(i.kind == "split_missing" and i.outcome == "split_recorded" for i in repaired.mismatches)
    assert pay.booking_row(api.state.db, b2["id"]).transfer_amount == 5000
    ours = {b["id"], b2["id"]}
    assert [i.kind for i in repaired.unsettled if str(i.booking_id) in ours] == ["refund_without_reversal"]


@pytest.mark.parametrize(
    "query,field",
    [
        ("from=2026-01-01T00:00:00", "from"),  # no time zone
        ("to=9999-12-31T23:00:00-05:00", "to"),  # outside 2000..2100
    ],
)
def test_earnings_ranges_are_instants_the_app_can_count(c, query, field):
    t = f.teacher(c)
    r = t["client"].get(f"/api/Teachers/me/earnings?{query}")
    assert r.status_code == 422 and r.json()["success"] is False, r.text
    assert [d["field"] for d in r.json()["data"]] == [field]
