"""Packages and credits through the public API, paid in the sandbox's hosted checkout."""

from __future__ import annotations

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import wait_for


def package(t: dict, *, lessons: int = 3, duration: int = 60, price: int = 15000, valid_days: int = 90) -> dict:
    r = t["client"].post(
        "/api/Teachers/me/packages",
        json={"lessons": lessons, "durationMinutes": duration, "price": price, "validDays": valid_days},
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]


def credits(p: dict) -> dict:
    r = p["client"].get("/api/Credits")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def buy_and_pay(p: dict, pkg: dict, *, confirm: bool = True) -> dict:
    """Buy, pay on the hosted page; with `confirm`, the success page's call too. The purchase."""
    r = p["client"].post(f"/api/Packages/{pkg['id']}/buy")
    assert r.status_code == 201, r.text
    bought = r.json()["data"]
    page = pay.pay(bought["checkoutUrl"])
    assert page.status_code == 303, page.text
    if confirm:
        r = p["client"].post(f"/api/Packages/confirm-payment/{bought['stripeSessionId']}")
        assert r.status_code == 200, r.text
        assert r.json()["data"]["state"] == "paid"
    else:
        wait_for(lambda: credits(p)["total"] >= pkg["lessons"], message="the webhook's credits")
    return bought


def book_with_credit(p: dict, t: dict, **kwargs):
    starts_at = kwargs.pop("starts_at", None) or f.slot(**kwargs)
    return p["client"].post(
        "/api/Sessions/book",
        json={
            "teacherId": t["user"]["id"],
            "studentId": p["students"][0],
            "subject": "Mathematics",
            "startsAt": starts_at,
            "durationMinutes": 60,
            "payWith": "credit",
        },
    )


def ledger(p: dict, **params) -> dict:
    r = p["client"].get("/api/Credits/ledger", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]
