"""Issue #28's "done when", the wallet's part, on both databases: a teacher sets a package; a parent
buys it on the sandbox's checkout; books three lessons with credits (no checkout made for them,
checked at the sandbox); cancels one early (credit returned) and one late (credit used); one lesson
is completed; the rest is refunded pro rata; the ledger's money equals what Stripe kept of the
purchase. (The teacher's per-lesson transfer is item 6, another branch's.)"""

from __future__ import annotations

from tests import factories as f
from tests.credits import helpers as h
from tests.support import payments as pay
from tests.web.helpers import move_into_past


def _checkouts(sandbox) -> str:
    """The newest Checkout Session the sandbox holds (a new one would replace it)."""
    return pay.sandbox_get(sandbox, "/v1/checkout/sessions?limit=1")["data"][0]["id"]


def test_buy_book_three_cancel_early_and_late_complete_one_refund_the_rest(api, c, sandbox):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    pkg = h.package(t, lessons=4, price=20000)  # 50.00 a lesson against 60.00 single
    bought = h.buy_and_pay(p, pkg)
    before = _checkouts(sandbox)
    assert before == bought["stripeSessionId"]
    early = h.book_with_credit(p, t, days=3).json()["data"]
    late = h.book_with_credit(p, t, starts_at=f.slot(days=0, hour=23, minute=55)).json()
    if not late["success"]:
        late = h.book_with_credit(p, t, days=1, hour=0, minute=30).json()
    late = late["data"]
    done = h.book_with_credit(p, t, days=4).json()["data"]
    assert _checkouts(sandbox) == before  # no Stripe checkout for a credit booking
    assert all(b["status"] == 1 and b["checkoutUrl"] is None for b in (early, late, done))
    assert h.credits(p)["total"] == 1

    assert p["client"].post(f"/api/Sessions/{early['id']}/cancel").status_code == 200
    assert h.credits(p)["total"] == 2  # returned
    assert p["client"].post(f"/api/Sessions/{late['id']}/cancel").status_code == 200
    assert h.credits(p)["total"] == 2  # used up
    move_into_past(api.state.db, done["id"])
    r = t["client"].post(f"/api/Sessions/{done['id']}/complete")
    assert r.status_code == 200 and r.json()["data"]["status"] == 2

    r = p["client"].post(f"/api/Packages/purchases/{bought['purchaseId']}/refund")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["refundedAmount"] == 2 * 5000  # two lessons left x the per-lesson price
    assert h.credits(p)["total"] == 0
    entries = h.ledger(p, pageSize=100)["items"]
    assert sorted(e["kind"] for e in entries) == ["draw", "draw", "draw", "purchase", "refund", "return"]
    assert sum(e["lessons"] for e in entries) == 0
    cs = pay.sandbox_session(sandbox, bought["stripeSessionId"])
    intent = pay.sandbox_get(sandbox, f"/v1/payment_intents/{cs['payment_intent']}")
    charge = pay.sandbox_get(sandbox, f"/v1/charges/{intent['latest_charge']}")
    assert intent["transfer_group"] == f"purchase_{bought['purchaseId'].replace('-', '')}"
    assert intent.get("transfer_data") is None and not intent.get("application_fee_amount")  # the platform's charge
    assert sum(e["amount"] for e in entries) == charge["amount"] - charge["amount_refunded"] == 10000
