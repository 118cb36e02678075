"""The wallet's jobs, on both databases: an abandoned package checkout is given up by the expire
job (nothing in the wallet); credits past their validity expire (an `expire` entry); the parent is
told 30 and 7 days before, each once."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tests import factories as f
from tests.credits import helpers as h
from tests.jobs.helpers import later, run
from tests.support import payments as pay
from tutorbook.clock import utc_now
from tutorbook.credits.models import CreditPurchase
from tutorbook.notifications.models import Notification


def test_the_expire_job_gives_up_an_unpaid_package_checkout_and_leaves_nothing(api, c, sandbox):
    t, p = f.teacher(c), f.parent(c)
    bought = p["client"].post(f"/api/Packages/{h.package(t)['id']}/buy").json()["data"]
    result = run(api, "expire", now=later())
    assert "expired" in result.counts()
    with api.state.db.session_scope() as s:
        assert s.scalar(sa.select(CreditPurchase.state)) == "expired"
    assert pay.sandbox_session(sandbox, bought["stripeSessionId"])["status"] == "expired"
    assert h.credits(p)["total"] == 0 and h.ledger(p)["items"] == []
    assert pay.pay(bought["checkoutUrl"]).status_code != 303  # it can take no more money


def test_the_expire_job_settles_a_package_paid_but_never_confirmed(api, c, sandbox):
    pay.sandbox_config(sandbox, deliver_webhooks=False)
    t, p = f.teacher(c), f.parent(c)
    pkg = h.package(t, lessons=2, price=10000)
    bought = p["client"].post(f"/api/Packages/{pkg['id']}/buy").json()["data"]
    assert pay.pay(bought["checkoutUrl"]).status_code == 303
    assert h.credits(p)["total"] == 0
    run(api, "expire", now=later())
    assert h.credits(p)["total"] == 2
    run(api, "expire", now=later(minutes=40))
    assert h.credits(p)["total"] == 2  # once


def _warnings(api) -> list[tuple[str, dict]]:
    with api.state.db.session_scope() as s:
        rows = s.scalars(
            sa.select(Notification)
            .where(Notification.kind == "credits_expiring.parent")
            .order_by(Notification.created_at)
        )
        return [(n.to_address, n.payload) for n in rows]


def test_credits_are_warned_of_at_30_and_7_days_once_each_then_expire(api, c):
    t, p = f.teacher(c), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=3, price=15000, valid_days=90))
    assert h.book_with_credit(p, t, days=3).status_code == 201
    now = utc_now()
    run(api, "credits", now=now + timedelta(days=10))
    assert _warnings(api) == []
    run(api, "credits", now=now + timedelta(days=61))
    run(api, "credits", now=now + timedelta(days=62))
    [(to, payload)] = _warnings(api)
    assert to == p["email"] and (payload["count"], payload["days"]) == ("2", "30")
    run(api, "credits", now=now + timedelta(days=84))
    run(api, "credits", now=now + timedelta(days=85))
    assert [w[1]["days"] for w in _warnings(api)] == ["30", "7"]
    run(api, "mail", now=now + timedelta(days=86))
    with api.state.db.session_scope() as s:
        kinds = s.execute(sa.select(Notification.status).where(Notification.kind == "credits_expiring.parent"))
        assert [k for (k,) in kinds] == ["sent", "sent"]
    result = run(api, "credits", now=now + timedelta(days=91))
    assert result.counts().get("expired") == 1
    assert run(api, "credits", now=now + timedelta(days=92)).counts().get("expired") is None
    entries = h.ledger(p)["items"]
    assert [(e["kind"], e["lessons"]) for e in entries][0] == ("expire", -2)
    assert sum(e["lessons"] for e in entries) == 0
