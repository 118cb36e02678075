"""/openapi.json is what the Angular team generates its client from: stable `Tag_camelCase`
operationIds, path parameters under the frontend's names, and the booking status as a named enum."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.openapi import served_openapi
from tutorbook.bookings.lifecycle import STATUS_NAMES, Status
from tutorbook.bookings.schemas import SessionStatus

# Every operation of the document. A rename here renames a method of the generated client: make it
# on purpose, and tell the frontend.
OPERATION_IDS = {
    ("POST", "/api/Auth/register"): "Auth_register",
    ("POST", "/api/Auth/login"): "Auth_login",
    ("GET", "/api/Auth/me"): "Auth_me",
    ("GET", "/api/Students"): "Students_list",
    ("POST", "/api/Students"): "Students_add",
    ("PUT", "/api/Students/{studentId}"): "Students_update",
    ("DELETE", "/api/Students/{studentId}"): "Students_delete",
    ("GET", "/api/Teachers"): "Teachers_list",
    ("GET", "/api/Teachers/me"): "Teachers_getMe",
    ("PUT", "/api/Teachers/me"): "Teachers_updateMe",
    ("GET", "/api/Teachers/me/time-off"): "Teachers_myTimeOff",
    ("POST", "/api/Teachers/me/time-off"): "Teachers_addMyTimeOff",
    ("DELETE", "/api/Teachers/me/time-off/{timeOffId}"): "Teachers_deleteMyTimeOff",
    ("GET", "/api/Teachers/me/calendars"): "Teachers_myCalendars",
    ("POST", "/api/Teachers/me/calendars"): "Teachers_addMyCalendar",
    ("DELETE", "/api/Teachers/me/calendars/{calendarId}"): "Teachers_deleteMyCalendar",
    ("GET", "/api/Teachers/me/why-not"): "Teachers_whyNotOffered",
    ("GET", "/api/Teachers/me/availability"): "Teachers_myAvailability",
    ("PUT", "/api/Teachers/me/availability"): "Teachers_setMyAvailability",
    ("GET", "/api/Teachers/me/policy"): "Teachers_myPolicy",
    ("PUT", "/api/Teachers/me/policy"): "Teachers_setMyPolicy",
    ("GET", "/api/Teachers/{teacherId}"): "Teachers_get",
    ("GET", "/api/Teachers/{teacherId}/availability"): "Teachers_availability",
    ("POST", "/api/Sessions/book"): "Sessions_book",
    ("POST", "/api/Sessions/confirm-payment/{stripeSessionId}"): "Sessions_confirmPayment",
    ("POST", "/api/Sessions/cancel-payment/{stripeSessionId}"): "Sessions_cancelPayment",
    ("GET", "/api/Sessions/my-bookings"): "Sessions_myBookings",
    ("GET", "/api/Sessions/teacher-schedule"): "Sessions_teacherSchedule",
    ("GET", "/api/Sessions/{bookingId}"): "Sessions_get",
    ("GET", "/api/Sessions/{bookingId}/history"): "Sessions_history",
    ("POST", "/api/Sessions/{bookingId}/cancel"): "Sessions_cancel",
    ("POST", "/api/Sessions/{bookingId}/complete"): "Sessions_complete",
    ("POST", "/api/Sessions/{bookingId}/reschedule"): "Sessions_reschedule",
    ("POST", "/api/Series/preview"): "Series_preview",
    ("POST", "/api/Series"): "Series_create",
    ("GET", "/api/Series/{seriesId}"): "Series_show",
    ("POST", "/api/Series/{seriesId}/cancel"): "Series_cancelFrom",
    ("POST", "/api/Series/lessons/{bookingId}/pay"): "Series_payLesson",
    ("GET", "/api/Series/{seriesId}/calendar.ics"): "Series_calendarFile",
    ("POST", "/api/StripeWebhook/webhook"): "Stripe_webhook",
    ("POST", "/api/StripeWebhook/connect"): "Stripe_connectWebhook",
    ("GET", "/health"): "Health_live",
    ("GET", "/health/live"): "Health_liveness",
    ("GET", "/health/ready"): "Health_ready",
    ("GET", "/api/Admin/reports/orphaned-sessions"): "Admin_orphanedSessions",
    ("GET", "/api/Admin/reports/invalid-statuses"): "Admin_invalidStatuses",
    ("GET", "/api/Admin/bookings"): "Admin_bookings",
    ("POST", "/api/Admin/cleanup"): "Admin_cleanup",
    ("POST", "/api/Admin/reconcile"): "Admin_reconcile",
    ("POST", "/api/Admin/bookings/{bookingId}/refund"): "Admin_refundBooking",
    ("POST", "/api/Auth/forgot-password"): "Auth_forgotPassword",
    ("POST", "/api/Auth/reset-password"): "Auth_resetPassword",
    ("GET", "/api/Notifications/settings"): "Notifications_getSettings",
    ("PUT", "/api/Notifications/settings"): "Notifications_updateSettings",
    ("POST", "/api/Notifications/calendar-feed"): "Notifications_newCalendarFeed",
    ("DELETE", "/api/Notifications/calendar-feed"): "Notifications_revokeCalendarFeed",
    ("GET", "/calendar/{secret}.ics"): "Notifications_calendarFeed",
    ("POST", "/api/Teachers/me/payouts/onboard"): "Teachers_onboardPayouts",
    ("GET", "/api/Teachers/me/payouts"): "Teachers_myPayouts",
    ("GET", "/api/Teachers/me/earnings"): "Teachers_myEarnings",
    ("GET", "/api/Admin/reports/payouts"): "Admin_payoutsReport",
    # Lesson packages and the credit wallet (issue #28).
    ("POST", "/api/Teachers/me/packages"): "Packages_createPackage",
    ("DELETE", "/api/Teachers/me/packages/{packageId}"): "Packages_retirePackage",
    ("GET", "/api/Teachers/{teacherId}/packages"): "Packages_teacherPackages",
    ("POST", "/api/Packages/{packageId}/buy"): "Packages_buy",
    ("POST", "/api/Packages/confirm-payment/{stripeSessionId}"): "Packages_confirmPayment",
    ("POST", "/api/Packages/purchases/{purchaseId}/cancel"): "Packages_cancelPurchase",
    ("POST", "/api/Packages/purchases/{purchaseId}/refund"): "Packages_refundUnused",
    ("GET", "/api/Credits"): "Credits_myCredits",
    ("GET", "/api/Credits/ledger"): "Credits_myLedger",
    ("GET", "/api/Credits/purchases"): "Credits_myPurchases",
    ("GET", "/api/Admin/families/{parentId}/credits"): "Admin_familyWallet",
    ("POST", "/api/Admin/families/{parentId}/credits"): "Admin_adjustCredits",
}
NAMES = ["Pending", "Confirmed", "Completed", "Cancelled"]


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> dict:
    return json.loads(served_openapi(tmp_path_factory.mktemp("var")))


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def test_every_operation_id_is_pinned(doc):
    assert {(m, p): op["operationId"] for m, p, op in operations(doc)} == OPERATION_IDS


def test_operation_ids_are_unique_and_read_tag_underscore_camel_case(doc):
    ops = list(operations(doc))
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids))
    for _, _, op in ops:
        tag, name = op["operationId"].split("_")
        assert tag == op["tags"][0] and re.fullmatch(r"[a-z][a-zA-Z]*", name), op["operationId"]


def test_path_parameters_carry_the_frontends_camel_case_names(doc):
    path_params = {}
    for _, path, op in operations(doc):
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert names == re.findall(r"{(\w+)}", path)
        path_params.update(dict.fromkeys(names, path))
    # `secret` is the private calendar feed's (a URL the user pastes into a calendar app).
    assert set(path_params) == {
        "studentId",
        "teacherId",
        "stripeSessionId",
        "bookingId",
        "seriesId",
        "timeOffId",
        "calendarId",
        "secret",
        "packageId",  # issue #28
        "purchaseId",
        "parentId",
    }


def test_the_urls_are_unchanged_and_a_bad_path_parameter_is_named_as_documented(c):
    r = c.get("/api/Sessions/not-a-uuid")
    assert r.status_code == 401  # auth first: the URL matched the route
    r = c.get("/api/Teachers/not-a-uuid/availability")
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["data"]] == ["teacherId"]


def test_status_is_an_integer_enum_that_names_its_values(doc):
    schemas = doc["components"]["schemas"]
    status = schemas["SessionStatus"]
    assert status["type"] == "integer" and status["enum"] == [0, 1, 2, 3]
    assert status["x-enum-varnames"] == status["x-enumNames"] == NAMES
    assert "0 Pending, 1 Confirmed, 2 Completed, 3 Cancelled" in status["description"]
    for model in ("SessionOut", "OrphanedSession"):
        props = schemas[model]["properties"]
        assert props["status"]["$ref"] == "#/components/schemas/SessionStatus"
        assert props["statusName"]["type"] == "string" and props["statusName"]["enum"] == NAMES
    history = schemas["HistoryOut"]["properties"]
    assert history["toStatus"]["$ref"] == "#/components/schemas/SessionStatus"


def test_the_documented_status_enum_is_the_lifecycles():
    assert [(s.name, s.value) for s in SessionStatus] == [(s.label, s.value) for s in Status]
    assert [s.name for s in SessionStatus] == list(STATUS_NAMES.values()) == NAMES


def test_the_booking_lists_keep_their_parameters_and_add_optional_keyset_ones(doc):
    def params(path: str) -> dict:
        return {p["name"]: p for p in doc["paths"][path]["get"].get("parameters", []) if p["in"] == "query"}

    my_bookings, schedule = params("/api/Sessions/my-bookings"), params("/api/Sessions/teacher-schedule")
    assert set(my_bookings) == {"page", "pageSize", "after"} and set(schedule) == {"from", "to", "pageSize", "after"}
    assert not any(p.get("required") for p in [*my_bookings.values(), *schedule.values()])
    assert my_bookings["page"]["schema"]["default"] == 1 and my_bookings["pageSize"]["schema"]["default"] == 20
    assert schedule["pageSize"]["schema"]["default"] == 100
    page = doc["components"]["schemas"]["SessionPage"]
    assert set(page["required"]) == {"items", "page", "pageSize", "total"}  # as before; nextCursor is new
    assert {page["properties"][name]["type"] for name in ("page", "pageSize", "total")} == {"integer"}
    assert {"type": "null"} in page["properties"]["nextCursor"]["anyOf"]
    headers = doc["paths"]["/api/Sessions/teacher-schedule"]["get"]["responses"]["200"]["headers"]
    assert 'rel="next"' in headers["Link"]["description"]
