"""Property-based fuzz (hypothesis) of every route's input on both databases: never a 5xx.

Each target starts from a request the app accepts and breaks one part of it (a body field, a
nested item, a query or path value, a form field, a signed webhook's event), sometimes several:
text with control characters, NUL and lone surrogates, oversized strings, extreme numbers
(2**63, NaN, Infinity), extreme and invalid dates (years 1 and 9999, offsets of 23:59, 30
February), wrong JSON types. Whatever comes back must be below 500.

CI size: TUTORBOOK_FUZZ_EXAMPLES (default 40) per target and database, derandomized;
TUTORBOOK_HEAVY=1 makes it 1,000, random. Each test prints its count of requests by status class
(`pytest -s`); docs/RELIABILITY.md quotes them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories as f
from tests.jobs.helpers import admin_client
from tests.support import payments as pay
from tests.support import webhooks as wh
from tests.web.helpers import WebClient
from tutorbook.accounts.models import LoginFailure

HEAVY = bool(os.environ.get("TUTORBOOK_HEAVY"))
EXAMPLES = int(os.environ.get("TUTORBOOK_FUZZ_EXAMPLES", "1000" if HEAVY else "40"))

# -- nasty values ----------------------------------------------------------------------------

CONTROL = st.characters(categories=["Cc", "Cs", "Cf", "Zl", "Zp"])
nasty_text = st.one_of(
    st.text(max_size=30),  # any code point but lone surrogates
    st.text(alphabet=st.one_of(CONTROL, st.characters()), min_size=1, max_size=30),
    st.sampled_from(
        ["\x00", "a\x00b", "\ud800", "\udfff", "\r\n", "\t", "\x1b[31m", "\u202e", "{CHECKOUT_SESSION_ID}"]
    ),
    st.sampled_from(["İ" * 128 + "@example.com", "a@" + "b" * 250 + ".com", "x" * 101, "x" * 256, "x" * 70_000]),
    st.integers(min_value=200, max_value=3000).map(lambda n: "é" * n),
)
nasty_number = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)).map(
    lambda d: timezone(timedelta(minutes=int(d.total_seconds() // 60)))
)
nasty_date = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=offsets).map(
        datetime.isoformat
    ),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(datetime.isoformat),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-23:59",
            "2100-12-31T23:00:00-05:00",
            "1999-12-31T23:59:59Z",
            "2026-02-30T10:00:00Z",
            "2026-12-01T25:00:00Z",
            "2026-12-01T10:00:00+24:00",
            "yesterday",
            "",
        ]
    ),
)
scalar = st.one_of(st.none(), st.booleans(), nasty_number, nasty_text, nasty_date)
any_json = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
nasty = st.one_of(nasty_text, nasty_text, nasty_date, nasty_number, any_json)


def paths(template, prefix=()):
    """Every position in a JSON template (the root, each key, each list item)."""
    yield prefix
    if isinstance(template, dict):
        for k, v in template.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(template, list):
        for i, v in enumerate(template):
            yield from paths(v, (*prefix, i))


def replaced(template, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(template, dict):
        return {**template, head: replaced(template[head], rest, value)}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(template)]


def at(template, path):
    for step in path:
        template = template[step]
    return template


def tweaked(original: str) -> st.SearchStrategy:
    """A valid text made invalid in place: a control character slipped in, or repeated to excess."""
    char = st.one_of(st.just("\x00"), st.sampled_from(["\ud800", "\x1b", "\x7f", "\x85"]), CONTROL)
    slipped = st.tuples(char, st.integers(0, len(original))).map(lambda t: original[: t[1]] + t[0] + original[t[1] :])
    return st.one_of(slipped, slipped, st.just(original * 300))


@st.composite
def broken(draw, template):
    """`template` with one position replaced by a nasty value (a text half the time by a tweak
    of its own), in one case of four two positions; sometimes a field dropped or one added."""
    for _ in range(2 if draw(st.integers(0, 3)) == 0 else 1):
        spots = list(paths(template))
        spot = draw(st.sampled_from(spots[1:] or spots))
        own = at(template, spot)
        tweak = isinstance(own, str) and draw(st.booleans())
        template = replaced(template, spot, draw(tweaked(own) if tweak else nasty))
    if isinstance(template, dict) and template and draw(st.integers(0, 9)) == 0:
        dropped = draw(st.sampled_from(sorted(template, key=str)))
        template = {k: v for k, v in template.items() if k != dropped}
    if isinstance(template, dict) and draw(st.integers(0, 19)) == 0:
        template = {**template, draw(st.text(max_size=10)): draw(scalar)}
    return template


def as_query(value) -> str:
    """A query or path value as the raw text a client could send (surrogates as their bytes),
    cut to 2,000 characters: servers refuse longer request lines anyway (httpx over 64 KiB)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return quote(text[:2000].encode("utf-8", "surrogatepass"), safe="")


def query(params: dict) -> str:
    return "&".join(f"{quote(k, safe='')}={as_query(v)}" for k, v in params.items() if v is not None)


# -- the targets -----------------------------------------------------------------------------


@pytest.fixture
def world(api, c, sandbox):
    pay.sandbox_config(sandbox, deliver_webhooks=False)
    t, profile_t, p = f.teacher(c), f.teacher(c), f.parent(c)
    pending = f.book(p, t, starts_at=f.slot(days=4)).json()["data"]
    w = {"api": api, "sandbox": sandbox, "anon": c, "t": t, "profile_t": profile_t, "p": p, "pending": pending}
    w["admin"] = admin_client(api, c)
    w["web"] = WebClient(api.state.base_url)
    w["web"].login(p["email"])
    yield w
    w["web"].close()


def fresh_email(body):
    """A new address per example in place of NEW_EMAIL: a taken one is refused (409) before
    anything else in the body reaches the database."""
    if isinstance(body, dict) and body.get("email") == NEW_EMAIL:
        return {**body, "email": f"f{uuid.uuid4().hex[:12]}@example.com"}
    return body


def forget_failed_logins(api) -> None:
    """The login throttle's state is the login_failures table (shared by replicas): empty it."""
    with api.state.db.session_scope() as session:
        session.execute(sa.delete(LoginFailure))


def json_target(who, method, path, template):
    def send(w, body):
        if path.startswith("/api/Auth"):
            forget_failed_logins(w["api"])  # 429s would hide the checks behind the throttle
        client = w[who] if who in ("anon", "admin") else w[who]["client"]
        body = json.dumps(fresh_email(body)).encode()
        return client.request(method, path.format(**ids(w)), content=body, headers=JSON)

    return send, lambda w: broken(template(w))


def query_target(who, method, path, template):
    def send(w, params):
        client = w[who] if who in ("anon", "admin") else w[who]["client"]
        params = params if isinstance(params, dict) else {"x": params}
        return client.request(method, path.format(**ids(w)) + "?" + query(params))

    return send, lambda w: broken(template(w))


def path_target(who, path):
    def send(w, value):
        return w[who]["client"].post(path.format(value=as_query(value), **ids(w)))

    return send, lambda w: st.one_of(nasty_text, nasty_number.map(str), st.just(w["pending"]["stripeSessionId"]))


def form_target(path, template):
    def send(w, form):
        form = fresh_email(form if isinstance(form, dict) else {"x": form})
        form = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in form.items()}
        forget_failed_logins(w["api"])
        body = "&".join(f"{quote(k, safe='')}={as_query(v)}" for k, v in form.items())
        body += f"&csrf_token={w['web'].token}"
        return w["web"].http.post(path, content=body, headers={"content-type": FORM})

    return send, lambda w: broken(template(w))


def webhook_target(type_):
    def send(w, event):
        return wh.post(w["api"].state.base_url, event)

    def events(w):
        obj = pay.sandbox_session(w["sandbox"], w["pending"]["stripeSessionId"])
        if type_ == "checkout.session.completed":
            obj = {**obj, "status": "complete", "payment_status": "paid"}
        elif type_ == "charge.refunded":
            obj = {"object": "charge", "id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 100}
        elif type_ in CONNECT_OBJECTS:
            obj = CONNECT_OBJECTS[type_]
        return broken(wh.event(type_, obj, event_id=FRESH)).map(fresh_id)

    return send, events


FRESH = "evt_fresh"
# Stripe Connect objects as the account, transfer and fee events carry them.
CONNECT_OBJECTS = {
    "account.updated": {
        "id": "acct_1",
        "object": "account",
        "charges_enabled": True,
        "payouts_enabled": False,
        "details_submitted": True,
        "requirements": {"currently_due": ["external_account"], "disabled_reason": None},
    },
    "transfer.reversed": {
        "id": "tr_1",
        "object": "transfer",
        "amount": 5100,
        "amount_reversed": 100,
        "source_transaction": "ch_1",
    },
    "application_fee.refunded": {"id": "fee_1", "object": "application_fee", "charge": "ch_1", "amount_refunded": 10},
}


def fresh_id(event):
    """A new event id per example (unless the id is what was broken): a repeated id would only
    ever be answered 'duplicate'."""
    if isinstance(event, dict) and event.get("id") == FRESH:
        return {**event, "id": f"evt_{uuid.uuid4().hex}"}
    return event


def ids(w) -> dict:
    return {
        "tid": w["t"]["user"]["id"],
        "sid": w["p"]["students"][0],
        "bid": w["pending"]["id"],
        "pid": w["p"]["user"]["id"],
    }


JSON = {"content-type": "application/json"}
NEW_EMAIL = "new@example.com"
FORM = "application/x-www-form-urlencoded"


def _book(w):
    return {
        "teacherId": w["t"]["user"]["id"],
        "studentId": w["p"]["students"][0],
        "subject": "Mathematics",
        "startsAt": f.slot(days=2),
        "durationMinutes": 60,
    }


def _profile(w):
    return {
        "subjects": ["Mathematics", "Physics"],
        "hourlyRate": 6000,
        "currency": "usd",
        "timeZone": "Europe/Berlin",
        "bio": "Hello\nthere",
        "fullName": "Ada",
    }


TARGETS = {
    "register": json_target(
        "anon",
        "POST",
        "/api/Auth/register",
        lambda w: {
            "email": NEW_EMAIL,
            "password": "long-enough-pw",
            "fullName": "New",
            "role": "Parent",
            "timeZone": "UTC",
        },
    ),
    "login": json_target(
        "anon", "POST", "/api/Auth/login", lambda w: {"email": w["p"]["email"], "password": f.PASSWORD}
    ),
    "add student": json_target(
        "p", "POST", "/api/Students", lambda w: {"fullName": "Kid", "gradeLevel": "5", "notes": "a\nb"}
    ),
    "change student": json_target(
        "p", "PUT", "/api/Students/{sid}", lambda w: {"fullName": "Kid", "gradeLevel": "5", "notes": "a\nb"}
    ),
    "teacher profile": json_target("profile_t", "PUT", "/api/Teachers/me", _profile),
    "teacher hours": json_target(
        "profile_t",
        "PUT",
        "/api/Teachers/me/availability",
        lambda w: {
            "windows": [
                {"weekday": 0, "start": "09:00", "end": "17:00"},
                {"weekday": 6, "start": "00:00", "end": "24:00"},
            ]
        },
    ),
    "book": json_target("p", "POST", "/api/Sessions/book", _book),
    # Loopback: refused by the fetcher at once (the fuzzed app does not allow private hosts).
    "connect calendar": json_target(
        "profile_t", "POST", "/api/Teachers/me/calendars", lambda w: {"icsUrl": "https://127.0.0.1:9/cal.ics"}
    ),
    "teachers query": query_target("anon", "GET", "/api/Teachers", lambda w: {"subject": "Mathematics"}),
    "availability query": query_target(
        "anon",
        "GET",
        "/api/Teachers/{tid}/availability",
        lambda w: {"from": f.slot(days=1), "to": f.slot(days=3)},
    ),
    "schedule query": query_target(
        "t",
        "GET",
        "/api/Sessions/teacher-schedule",
        lambda w: {
            "from": f.slot(days=-1),
            "to": f.slot(days=9),
            "pageSize": 10,
            "after": "2026-12-01T10:00:00Z~" + w["pending"]["id"],
        },
    ),
    "my-bookings query": query_target(
        "p",
        "GET",
        "/api/Sessions/my-bookings",
        lambda w: {"page": 1, "pageSize": 20, "after": "2026-12-01T10:00:00Z~" + w["pending"]["id"]},
    ),
    "reconcile query": query_target(
        "admin", "POST", "/api/Admin/reconcile", lambda w: {"dryRun": "true", "since": f.slot(days=-1)}
    ),
    "confirm-payment path": path_target("p", "/api/Sessions/confirm-payment/{value}"),
    "cancel-payment path": path_target("p", "/api/Sessions/cancel-payment/{value}?bookingId={bid}"),
    "completed webhook": webhook_target("checkout.session.completed"),
    "expired webhook": webhook_target("checkout.session.expired"),
    "refunded webhook": webhook_target("charge.refunded"),
    "account webhook": webhook_target("account.updated"),
    "transfer webhook": webhook_target("transfer.reversed"),
    "application fee webhook": webhook_target("application_fee.refunded"),
    "earnings query": query_target(
        "t", "GET", "/api/Teachers/me/earnings", lambda w: {"from": f.slot(days=-30), "to": f.slot(days=9)}
    ),
    "console bookings query": query_target(
        "admin",
        "GET",
        "/api/Admin/bookings",
        lambda w: {
            "status": "0",
            "teacher": w["t"]["email"],
            "parent": w["p"]["email"],
            "child": w["p"]["students"][0],
            "from": "2026-01-01",
            "to": "2026-12-31",
            "q": w["pending"]["stripeSessionId"],
            "after": "2026-12-01T10:00:00Z~" + w["pending"]["id"],
            "limit": 10,
        },
    ),
    "console search by name": query_target(
        "admin",
        "GET",
        "/api/Admin/bookings",
        lambda w: {"q": "Parent 1", "teacher": "teacher", "parent": "example.com", "limit": 10},
    ),
    "admin refund": json_target(
        "admin",
        "POST",
        "/api/Admin/bookings/{bid}/refund",
        lambda w: {"amount": 100, "reason": "fuzz", "idempotencyKey": "fuzz-key"},
    ),
    "payouts report query": query_target(
        "admin", "GET", "/api/Admin/reports/payouts", lambda w: {"from": f.slot(days=-30), "to": f.slot(days=9)}
    ),
    "children form": form_target("/children", lambda w: {"full_name": "Kid", "grade_level": "5"}),
    "book form": form_target(
        "/book",
        lambda w: {
            "teacher_id": w["t"]["user"]["id"],
            "student_id": w["p"]["students"][0],
            "subject": "Mathematics",
            "duration_minutes": "60",
            "starts_at": f.slot(days=5),
            "week": "0",
        },
    ),
    "register form": form_target(
        "/register",
        lambda w: {"email": NEW_EMAIL, "password": "long-enough-pw", "full_name": "G", "role": "Teacher"},
    ),
    "login form": form_target("/login", lambda w: {"email": w["p"]["email"], "password": f.PASSWORD, "next": "/"}),
    # Lesson packages and the credit wallet (issue #28).
    "create package": json_target(
        "profile_t",
        "POST",
        "/api/Teachers/me/packages",
        lambda w: {"lessons": 5, "durationMinutes": 60, "price": 25000, "validDays": 180},
    ),
    "book with a credit": json_target("p", "POST", "/api/Sessions/book", lambda w: {**_book(w), "payWith": "credit"}),
    "ledger query": query_target("p", "GET", "/api/Credits/ledger", lambda w: {"pageSize": 10, "after": "e123"}),
    "adjust credits": json_target(
        "admin",
        "POST",
        "/api/Admin/families/{pid}/credits",
        lambda w: {
            "teacherId": w["t"]["user"]["id"],
            "durationMinutes": 60,
            "lessons": 2,
            "reason": "fuzz",
            "validDays": 30,
        },
    ),
}


@pytest.mark.parametrize("target", list(TARGETS))
def test_no_input_gives_a_server_error(world, database_url, target):
    """Every request of the target, broken by hypothesis, is answered below 500."""
    send, strategy = TARGETS[target]
    counts: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not HEAVY,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(value=strategy(world))
    def run(value):
        r = send(world, value)
        counts[f"{r.status_code // 100}xx"] += 1
        assert r.status_code < 500, f"{r.status_code} for {value!r}: {r.text[:300]}"

    run()
    kind = database_url.split(":")[0].split("+")[0]
    total = sum(counts.values())
    print(f"\nfuzz {target} on {kind}: {total} requests, {dict(sorted(counts.items()))}, {counts['5xx']} 5xx")
    assert total >= EXAMPLES // 2 and counts["5xx"] == 0
