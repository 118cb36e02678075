"""Every API route x anonymous / parent A / parent B / teacher / other teacher / admin, with the
expected status code for each. The route list is read from the app, so a new route without a
row fails `test_every_route_has_a_row`. (The HTML pages have their own tests in tests/web.)"""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from tests import factories as f
from tests.support import payments as pay
from tests.support.servers import http_client
from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import Role
from tutorbook.clock import utc_now
from tutorbook.identity import AuthUser
from tutorbook.notifications.models import Notification
from tutorbook.series import service as series_service
from tutorbook.series.schemas import SeriesIn
from tutorbook.teachers.policy import Terms

ROLES = ("anonymous", "parent_b", "other_teacher", "teacher", "parent_a", "admin")  # the order requests go in
ALL = dict.fromkeys(ROLES)


def row(anonymous, parent_b, other_teacher, teacher, parent_a, admin):
    return dict(zip(ROLES, (anonymous, parent_b, other_teacher, teacher, parent_a, admin), strict=True))


def every(code):
    return row(*[code] * 6)


# (method, path) -> expected codes, and the body to send (a callable of the world, or None).
MATRIX: dict[tuple[str, str], dict] = {
    ("POST", "/api/Auth/register"): every(201),
    ("POST", "/api/Auth/login"): every(200),
    ("GET", "/api/Auth/me"): row(401, 200, 200, 200, 200, 200),
    ("GET", "/api/Students"): row(401, 200, 403, 403, 200, 403),
    ("POST", "/api/Students"): row(401, 201, 403, 403, 201, 403),
    ("PUT", "/api/Students/{studentId}"): row(401, 403, 403, 403, 200, 403),
    ("DELETE", "/api/Students/{studentId}"): row(401, 403, 403, 403, 409, 403),  # A's child has bookings
    ("GET", "/api/Teachers"): every(200),
    ("GET", "/api/Teachers/{teacherId}"): every(200),
    ("GET", "/api/Teachers/{teacherId}/availability"): every(200),
    ("GET", "/api/Teachers/me"): row(401, 403, 200, 200, 403, 403),
    ("PUT", "/api/Teachers/me"): row(401, 403, 200, 200, 403, 403),
    ("GET", "/api/Teachers/me/time-off"): row(401, 403, 200, 200, 403, 403),
    ("POST", "/api/Teachers/me/time-off"): row(401, 403, 201, 201, 403, 403),
    ("DELETE", "/api/Teachers/me/time-off/{timeOffId}"): row(401, 403, 404, 200, 403, 403),  # not the other's
    ("GET", "/api/Teachers/me/availability"): row(401, 403, 200, 200, 403, 403),
    ("GET", "/api/Teachers/me/calendars"): row(401, 403, 200, 200, 403, 403),
    ("POST", "/api/Teachers/me/calendars"): row(401, 403, 201, 201, 403, 403),
    ("DELETE", "/api/Teachers/me/calendars/{calendarId}"): row(401, 403, 404, 200, 403, 403),  # not the other's
    ("GET", "/api/Teachers/me/why-not"): row(401, 403, 422, 422, 403, 403),  # `at` is required
    ("PUT", "/api/Teachers/me/availability"): row(401, 403, 200, 200, 403, 403),
    ("POST", "/api/Teachers/me/payouts/onboard"): row(401, 403, 200, 200, 403, 403),
    ("GET", "/api/Teachers/me/payouts"): row(401, 403, 200, 200, 403, 403),
    ("GET", "/api/Teachers/me/earnings"): row(401, 403, 200, 200, 403, 403),
    ("GET", "/api/Teachers/me/policy"): row(401, 403, 200, 200, 403, 403),
    ("PUT", "/api/Teachers/me/policy"): row(401, 403, 200, 200, 403, 403),
    ("POST", "/api/Sessions/book"): row(401, 403, 403, 403, 201, 403),  # B may not book A's child
    ("POST", "/api/Sessions/confirm-payment/{stripeSessionId}"): row(401, 403, 403, 403, 200, 403),
    ("POST", "/api/Sessions/cancel-payment/{stripeSessionId}"): row(401, 403, 403, 403, 400, 403),  # paid
    ("GET", "/api/Sessions/my-bookings"): row(401, 200, 403, 403, 200, 403),
    ("GET", "/api/Sessions/teacher-schedule"): row(401, 403, 200, 200, 403, 403),
    ("GET", "/api/Sessions/{bookingId}"): row(401, 403, 403, 200, 200, 200),
    ("GET", "/api/Sessions/{bookingId}/history"): row(401, 403, 403, 200, 200, 200),
    ("POST", "/api/Sessions/{bookingId}/cancel"): row(401, 403, 403, 200, 200, 200),  # teacher cancels first
    ("POST", "/api/Sessions/{bookingId}/complete"): row(401, 403, 403, 400, 403, 400),  # not started yet
    # The teacher moves it first; the parent and the admin then ask for the time it already has.
    ("POST", "/api/Sessions/{bookingId}/reschedule"): row(401, 403, 403, 200, 200, 200),
    ("POST", "/api/StripeWebhook/webhook"): every(400),  # unsigned: refused whoever sends it
    ("POST", "/api/StripeWebhook/connect"): every(400),
    ("GET", "/health"): every(200),
    ("GET", "/health/live"): every(200),
    ("GET", "/health/ready"): every(200),
    ("GET", "/metrics"): row(401, 403, 403, 403, 403, 200),  # admins, and the scraper's own token
    ("GET", "/api/Admin/reports/orphaned-sessions"): row(401, 403, 403, 403, 403, 200),
    ("GET", "/api/Admin/reports/invalid-statuses"): row(401, 403, 403, 403, 403, 200),
    ("GET", "/api/Admin/bookings"): row(401, 403, 403, 403, 403, 200),
    ("GET", "/api/Admin/reports/payouts"): row(401, 403, 403, 403, 403, 200),
    ("POST", "/api/Admin/cleanup"): row(401, 403, 403, 403, 403, 200),
    ("POST", "/api/Admin/reconcile"): row(401, 403, 403, 403, 403, 200),
    ("POST", "/api/Admin/bookings/{bookingId}/refund"): row(401, 403, 403, 403, 403, 200),
    ("POST", "/api/Auth/forgot-password"): every(202),  # the same answer for anyone, any email
    ("POST", "/api/Auth/reset-password"): every(400),  # a made-up token
    ("GET", "/api/Notifications/settings"): row(401, 200, 200, 200, 200, 200),
    ("PUT", "/api/Notifications/settings"): row(401, 200, 200, 200, 200, 200),
    ("POST", "/api/Notifications/calendar-feed"): row(401, 201, 201, 201, 201, 201),
    ("DELETE", "/api/Notifications/calendar-feed"): row(401, 200, 200, 200, 200, 200),
    ("GET", "/calendar/{secret}.ics"): every(404),  # no such feed
    # Lesson packages and the credit wallet (issue #28).
    ("POST", "/api/Teachers/me/packages"): row(401, 403, 201, 201, 403, 403),
    ("DELETE", "/api/Teachers/me/packages/{packageId}"): row(401, 403, 404, 200, 403, 403),  # not the other's
    ("GET", "/api/Teachers/{teacherId}/packages"): every(200),
    ("POST", "/api/Packages/{packageId}/buy"): row(401, 201, 403, 403, 201, 403),
    # The booking's checkout is no package's: 404 for either parent.
    ("POST", "/api/Packages/confirm-payment/{stripeSessionId}"): row(401, 404, 403, 403, 404, 403),
    ("POST", "/api/Packages/purchases/{purchaseId}/cancel"): row(401, 403, 403, 403, 200, 403),  # paid: no-op
    ("POST", "/api/Packages/purchases/{purchaseId}/refund"): row(401, 403, 403, 403, 200, 409),  # then none left
    ("GET", "/api/Credits"): row(401, 200, 403, 403, 200, 403),
    ("GET", "/api/Credits/ledger"): row(401, 200, 403, 403, 200, 403),
    ("GET", "/api/Credits/purchases"): row(401, 200, 403, 403, 200, 403),
    ("GET", "/api/Admin/families/{parentId}/credits"): row(401, 403, 403, 403, 403, 200),
    ("POST", "/api/Admin/families/{parentId}/credits"): row(401, 403, 403, 403, 403, 201),
    ("POST", "/api/Series/preview"): row(401, 403, 403, 403, 200, 403),  # B may not book A's child
    ("POST", "/api/Series"): row(401, 403, 403, 403, 409, 403),  # by credit: A has none
    ("GET", "/api/Series/{seriesId}"): row(401, 403, 403, 200, 200, 200),
    ("GET", "/api/Series/{seriesId}/calendar.ics"): row(401, 403, 403, 200, 200, 200),
    # The teacher cancels the rest first; then nothing is left to cancel from that date.
    ("POST", "/api/Series/{seriesId}/cancel"): row(401, 403, 403, 200, 422, 422),
    ("POST", "/api/Series/lessons/{bookingId}/pay"): row(401, 404, 403, 403, 404, 403),  # a lone booking
}


def api_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every JSON route the app serves (pages and docs excluded)."""
    out = set()
    for entry in app.routes:
        contexts = entry.effective_route_contexts() if hasattr(entry, "effective_route_contexts") else [entry]
        for ctx in contexts:
            if not (isinstance(ctx, APIRoute) or hasattr(ctx, "original_route")):
                continue  # docs, static files
            if ctx.endpoint.__module__.startswith("tutorbook.web"):
                continue
            out |= {(m, ctx.path) for m in ctx.methods - {"HEAD"}}
    return out


def test_every_route_has_a_row(api):
    missing = api_routes(api) - set(MATRIX)
    assert not missing, f"routes without a row in the authorization matrix: {sorted(missing)}"


def world(api, path: str = ""):
    c = http_client(base_url=api.state.base_url, timeout=30)
    teacher, other_teacher = f.teacher(c), f.teacher(c)
    a, b = f.parent(c), f.parent(c)
    booking = f.book(a, teacher, starts_at=f.slot(days=3)).json()["data"]
    pay.pay(booking["checkoutUrl"])
    a["client"].post(f"/api/Sessions/confirm-payment/{booking['stripeSessionId']}")
    away = {"startsAt": f.slot(days=20), "endsAt": f.slot(days=21)}
    time_off = teacher["client"].post("/api/Teachers/me/time-off", json=away).json()["data"]
    # Connected, though never readable: the matrix's app refuses loopback addresses.
    calendar = teacher["client"].post("/api/Teachers/me/calendars", json={"icsUrl": "https://127.0.0.1:9/a.ics"})
    package = teacher["client"].post(
        "/api/Teachers/me/packages", json={"lessons": 3, "durationMinutes": 60, "price": 15000, "validDays": 90}
    ).json()["data"]
    purchase_id = None
    if "{purchaseId}" in path:  # A's paid purchase
        bought = a["client"].post(f"/api/Packages/{package['id']}/buy").json()["data"]
        pay.pay(bought["checkoutUrl"])
        a["client"].post(f"/api/Packages/confirm-payment/{bought['stripeSessionId']}")
        purchase_id = bought["purchaseId"]
    with api.state.db.session_scope() as s:
        email = f"admin-{uuid.uuid4().hex[:6]}@example.com"
        accounts.create_user(
            s,
            hasher=api.state.hasher,
            settings=api.state.settings,
            email=email,
            password=f.PASSWORD,
            full_name="Admin",
            role=Role.ADMIN,
            now=utc_now(),
        )
    admin = http_client(
        base_url=api.state.base_url, timeout=30, headers={"Authorization": "Bearer " + f.login(c, email=email)}
    )
    clients = {
        "anonymous": c,
        "parent_a": a["client"],
        "parent_b": b["client"],
        "teacher": teacher["client"],
        "other_teacher": other_teacher["client"],
        "admin": admin,
    }
    params = {
        "studentId": a["students"][0],
        "teacherId": teacher["user"]["id"],
        "bookingId": booking["id"],
        "stripeSessionId": booking["stripeSessionId"],
        "timeOffId": time_off["id"],
        "calendarId": calendar.json()["data"]["id"],
        "secret": "no-such-feed",
        "packageId": package["id"],
        "purchaseId": purchase_id,
        "parentId": a["user"]["id"],
    }
    if "{seriesId}" in path:
        params["seriesId"] = str(_series(api, a, teacher))
    return clients, params, {"a": a, "teacher": teacher}


def _series(api, a, teacher) -> uuid.UUID:
    """A weekly series of A's child with the teacher, held without Stripe (its checkout is the
    flow's, not what the matrix is about)."""
    parent = AuthUser(uuid.UUID(a["user"]["id"]), Role.PARENT, a["email"], "A", "UTC")
    body = SeriesIn(
        teacher_id=teacher["user"]["id"],
        student_id=a["students"][0],
        subject="Mathematics",
        first_starts_at=f.slot(days=40),
        duration_minutes=60,
        weeks=2,
        pay_with="card",
    )
    with api.state.db.session_scope() as s:
        platform = Terms.platform(api.state.settings)
        made = series_service.create(
            s, parent=parent, body=body, settings=api.state.settings, platform=platform, now=utc_now()
        )
        return made.series.id


def body_for(method, path, w):
    extra = w
    if path == "/api/Auth/register":
        return {
            "email": f"r{uuid.uuid4().hex[:8]}@example.com",
            "password": f.PASSWORD,
            "fullName": "R",
            "role": "Parent",
        }
    if path == "/api/Auth/login":
        return {"email": extra["a"]["email"], "password": f.PASSWORD}
    if path == "/api/Auth/forgot-password":
        return {"email": extra["a"]["email"]}
    if path == "/api/Auth/reset-password":
        return {"token": "made-up-token-" + "x" * 20, "password": "a-new-long-passphrase"}
    if path == "/api/Notifications/settings" and method == "PUT":
        return {"reminders": False}
    if path.startswith("/api/Students"):
        return {"fullName": "Child"}
    if path == "/api/Teachers/me":
        return {"subjects": ["Mathematics"], "hourlyRate": 6000, "currency": "usd", "timeZone": "UTC"}
    if path == "/api/Teachers/me/availability":
        return {"windows": f.ALL_WEEK}
    if path == "/api/Teachers/me/policy" and method == "PUT":
        return {"fullRefundHours": 24, "lateRefundPercent": 0, "rescheduleDeadlineHours": 24, "maxReschedules": 2}
    if path == "/api/Teachers/me/packages":
        return {"lessons": 3, "durationMinutes": 60, "price": 15000, "validDays": 90}
    if path == "/api/Admin/families/{parentId}/credits" and method == "POST":
        return {"teacherId": extra["teacher"]["user"]["id"], "durationMinutes": 60, "lessons": 1, "reason": "matrix"}
    if path.endswith("/refund"):
        return {"amount": 100, "reason": "matrix", "idempotencyKey": "matrix"}
    if path == "/api/Series/preview" or path == "/api/Series":
        series = {
            "teacherId": extra["teacher"]["user"]["id"],
            "studentId": extra["a"]["students"][0],
            "subject": "Mathematics",
            "firstStartsAt": f.slot(days=50),
            "durationMinutes": 60,
            "weeks": 3,
        }
        return series if path.endswith("preview") else {**series, "payWith": "credit"}
    if path == "/api/Series/{seriesId}/cancel":
        return {"from": f.slot(days=39)[:10]}
    if path.endswith("/reschedule"):
        return {"startsAt": f.slot(days=5)}
    if path == "/api/Teachers/me/calendars" and method == "POST":
        return {"icsUrl": f"https://127.0.0.1:9/{uuid.uuid4().hex}.ics"}
    if path == "/api/Teachers/me/time-off":
        return {"startsAt": f.slot(days=30), "endsAt": f.slot(days=31), "note": "Holiday"}
    if path == "/api/Sessions/book":
        return {
            "teacherId": extra["teacher"]["user"]["id"],
            "studentId": extra["a"]["students"][0],
            "subject": "Mathematics",
            "startsAt": f.slot(days=9),
            "durationMinutes": 60,
        }
    return None


@pytest.mark.parametrize("method,path", sorted(MATRIX))
def test_each_role_gets_the_expected_code(api, method, path):
    if (method, path) not in api_routes(api):
        pytest.fail(f"{method} {path} has a row but no route")
    clients, params, w = world(api, path)
    url = path.format(**params)
    got = {}
    for role in ROLES:
        body = body_for(method, path, w)
        r = clients[role].request(method, url, json=body) if body is not None else clients[role].request(method, url)
        got[role] = r.status_code
        text = path == "/metrics" or path.endswith("/calendar.ics")  # Prometheus text; iCalendar
        if not text or r.status_code != 200:
            assert r.json()["success"] is (r.status_code < 400)
    assert got == MATRIX[(method, path)]
    if path == "/api/Auth/forgot-password":
        # One account asked for by every role: one reset (one per account per interval); the
        # other lookups find it and write nothing.
        resets_written(api, 1)


def resets_written(api, count: int) -> None:
    """The resets are written after the 202 (background tasks): let them finish before the next
    test wipes the database."""
    deadline = time.monotonic() + 30
    query = sa.select(sa.func.count()).where(Notification.kind == "password_reset")
    while True:
        with api.state.db.session_scope() as s:
            if s.scalar(query) >= count:
                return
        assert time.monotonic() < deadline, "the password resets were never written"
        time.sleep(0.05)
