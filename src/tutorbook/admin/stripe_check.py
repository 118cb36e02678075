"""`tutorbook stripe check`: the operator's pre-flight. With the configured key (the sandbox, or a
real test or live key) it reads what Tutorbook depends on at Stripe and says, item by item,
what is missing or wrong and what to run or click to fix it:

- the platform's webhook endpoint (TUTORBOOK_PUBLIC_URL + /api/StripeWebhook/webhook): enabled,
  sending every platform event type the app acts on, in the API version the app pins, and its
  secret configured;
- the Connect webhook endpoint (… /api/StripeWebhook/connect, created with connect=true), the
  same for the connected accounts' events;
- Connect enabled on the platform;
- the platform's country: destination charges need the teachers' accounts
  (TUTORBOOK_CONNECT_COUNTRY) in its region;
- currencies: every teacher's currency one Tutorbook supports and the platform's country can
  charge in (a currency other than the platform's settles with a conversion: a note, not a fault).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tutorbook import currencies
from tutorbook.accounts.models import User
from tutorbook.config import Settings
from tutorbook.payments import gateway as gw
from tutorbook.payments.port import PaymentGateway
from tutorbook.payments.webhooks import CONNECT_EVENTS, CONNECT_WEBHOOK_PATH, PLATFORM_EVENTS, WEBHOOK_PATH
from tutorbook.teachers.models import TeacherProfile

DASHBOARD_WEBHOOKS = "Dashboard → Developers → Webhooks"


@dataclass(frozen=True)
class Finding:
    item: str
    ok: bool
    detail: str  # what was found (ok), or what is wrong
    fix: str = ""  # what to run or click
    note: str = ""  # worth knowing, not a fault


def teacher_currencies(session: Session) -> dict[str, list[str]]:
    """Each currency teachers with a price use, with those teachers' emails."""
    rows = session.execute(
        sa.select(TeacherProfile.currency, User.email)
        .join(User, User.id == TeacherProfile.user_id)
        .where(TeacherProfile.hourly_rate > 0)
        .order_by(TeacherProfile.currency, User.email)
    ).all()
    out: dict[str, list[str]] = {}
    for currency, email in rows:
        out.setdefault(currency.lower(), []).append(email)
    return out


def check(gateway: PaymentGateway, settings: Settings, *, teachers: dict[str, list[str]]) -> list[Finding]:
    """Every item, in order; GatewayError when Stripe cannot be asked at all."""
    endpoints = gateway.webhook_endpoints_sync()
    base = settings.public_url.rstrip("/")
    api = settings.sandbox_url.rstrip("/") if settings.uses_sandbox else "https://api.stripe.com"
    findings = [
        _endpoint(
            endpoints,
            item="platform webhook endpoint",
            url=base + WEBHOOK_PATH,
            connect=False,
            wanted=PLATFORM_EVENTS,
            secret=settings.stripe_webhook_secret,
            setting="TUTORBOOK_STRIPE_WEBHOOK_SECRET",
            key=settings.stripe_secret_key,
            api=api,
        ),
        _endpoint(
            endpoints,
            item="Connect webhook endpoint",
            url=base + CONNECT_WEBHOOK_PATH,
            connect=True,
            wanted=CONNECT_EVENTS,
            secret=settings.stripe_connect_webhook_secret,
            setting="TUTORBOOK_STRIPE_CONNECT_WEBHOOK_SECRET",
            key=settings.stripe_secret_key,
            api=api,
        ),
        _connect(gateway.connect_enabled_sync()),
    ]
    account = gateway.platform_account_sync()
    findings.append(_country(account, settings.connect_country.upper()))
    findings.append(_currencies(account, teachers))
    return findings


def _create_command(url: str, *, connect: bool, wanted: frozenset[str], key: str, api: str) -> str:
    events = " ".join(f'-d "enabled_events[]={e}"' for e in sorted(wanted))
    flag = " -d connect=true" if connect else ""
    who = '"$TUTORBOOK_STRIPE_SECRET_KEY:"' if key else "sk_test_sandbox:"
    return f"curl {api}/v1/webhook_endpoints -u {who} -d url={url}{flag} -d api_version={gw.API_VERSION} {events}"


def _endpoint(
    endpoints: list[gw.WebhookEndpoint],
    *,
    item: str,
    url: str,
    connect: bool,
    wanted: frozenset[str],
    secret: str,
    setting: str,
    key: str,
    api: str,
) -> Finding:
    kind = "Events on Connected accounts" if connect else "Events on your account"
    create = (
        f"run: {_create_command(url, connect=connect, wanted=wanted, key=key, api=api)}\n"
        f"or click: {DASHBOARD_WEBHOOKS} → Add endpoint → {kind}, URL {url}, API version {gw.API_VERSION}, "
        f"events {', '.join(sorted(wanted))}; then set {setting} to its signing secret (whsec_…)"
    )
    same = [e for e in endpoints if e.url == url and e.connect == connect]
    live = [e for e in same if e.enabled]
    if not live:
        if same:
            return Finding(
                item,
                False,
                f"{url} exists but is disabled ({same[0].id})",
                f"click: {DASHBOARD_WEBHOOKS} → {same[0].id} → Enable",
            )
        wrong_kind = [e for e in endpoints if e.url == url and e.connect != connect]
        detail = f"no enabled {'Connect ' if connect else ''}endpoint for {url}"
        if wrong_kind:
            other = "a Connect" if wrong_kind[0].connect else "an account"
            detail += f" ({wrong_kind[0].id} has that URL but is {other} endpoint)"
        return Finding(item, False, detail, create)
    best = live[0]
    missing = set() if "*" in best.enabled_events else wanted - set(best.enabled_events)
    problems, fixes = [], []
    if missing:
        problems.append(f"{best.id} does not send {', '.join(sorted(missing))}")
        events = " ".join(f'-d "enabled_events[]={e}"' for e in sorted(set(best.enabled_events) | wanted))
        fixes.append(
            f"run: curl {api}/v1/webhook_endpoints/{best.id} "
            f'-u "$TUTORBOOK_STRIPE_SECRET_KEY:" {events}'
            f"\nor click: {DASHBOARD_WEBHOOKS} → {best.id} → Select events"
        )
    if best.api_version != gw.API_VERSION:
        shown = best.api_version or "the account's default version"
        problems.append(f"{best.id} renders events in {shown}, Tutorbook reads {gw.API_VERSION}")
        fixes.append(
            "an endpoint's version cannot be changed: create a new one (below), set its secret, then delete "
            f"{best.id}\n{create}"
        )
    if not secret:
        problems.append(f"{setting} is not set (the route refuses every event)")
        fixes.append(f"set {setting} to the signing secret of {best.id} ({DASHBOARD_WEBHOOKS} → {best.id} → Reveal)")
    if problems:
        return Finding(item, False, "; ".join(problems), "\n".join(fixes))
    events = "all events" if "*" in best.enabled_events else f"{len(best.enabled_events)} event types"
    return Finding(item, True, f"{best.id} at {url}: {events}, API {best.api_version}")


def _connect(enabled: bool) -> Finding:
    if enabled:
        return Finding("Connect", True, "enabled on the platform")
    return Finding(
        "Connect",
        False,
        "the platform has not signed up for Connect: teachers cannot connect payouts",
        "click: Dashboard → Connect → Get started; choose Express accounts and fill in the platform profile",
    )


def _country(account: gw.PlatformAccount, connect_country: str) -> Finding:
    item = "platform country"
    if connect_country in account.transfer_countries:
        return Finding(item, True, f"{account.country}; teachers' accounts ({connect_country}) are in its region")
    return Finding(
        item,
        False,
        f"the platform is in {account.country}, the teachers' new accounts in {connect_country} "
        "(TUTORBOOK_CONNECT_COUNTRY): destination charges need both in one region",
        f"set TUTORBOOK_CONNECT_COUNTRY={account.country} (or a country of its region: "
        f"{', '.join(sorted(account.transfer_countries))})",
    )


def _currencies(account: gw.PlatformAccount, teachers: dict[str, list[str]]) -> Finding:
    item = "currencies"
    bad = {
        c: emails
        for c, emails in teachers.items()
        if currencies.get(c) is None or (account.payment_currencies and c not in account.payment_currencies)
    }
    if bad:
        detail = "; ".join(
            f"{c.upper()} ({', '.join(emails[:5])}{' …' if len(emails) > 5 else ''})"
            for c, emails in sorted(bad.items())
        )
        return Finding(
            item,
            False,
            f"teachers price in currencies the platform cannot charge: {detail}",
            "ask each teacher to pick one of "
            f"{', '.join(c.upper() for c in sorted(currencies.SUPPORTED))} on /teacher/profile; until then "
            "their bookings are refused (422)",
        )
    used = ", ".join(c.upper() for c in sorted(teachers)) or "none yet"
    others = sorted(c for c in teachers if c != account.default_currency)
    note = (
        f"{', '.join(c.upper() for c in others)} settle in {account.default_currency.upper()} "
        "with Stripe's conversion fee"
        if others
        else ""
    )
    return Finding(
        item,
        True,
        f"teachers' currencies: {used}; the platform settles in {account.default_currency.upper()}",
        note=note,
    )
