"""Small keyword-only factories that go through the public API."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx

from tests.support.servers import http_client

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)
ALL_WEEK = [{"weekday": d, "start": "00:00", "end": "24:00"} for d in range(7)]


def register(
    c: httpx.Client,
    *,
    role: str = "Parent",
    email: str | None = None,
    password: str = PASSWORD,
    full_name: str | None = None,
    time_zone: str = "UTC",
) -> dict:
    """Register and log in; returns {"user", "token", "client"} with an authorised client."""
    n = next(_seq)
    email = email or f"{role.lower()}{n}@example.com"
    r = c.post(
        "/api/Auth/register",
        json={
            "email": email,
            "password": password,
            "fullName": full_name or f"{role} {n}",
            "role": role,
            "timeZone": time_zone,
        },
    )
    assert r.status_code == 201, r.text
    token = login(c, email=email, password=password)
    authed = http_client(base_url=str(c.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return {"user": r.json()["data"], "token": token, "client": authed, "email": email}


def login(c: httpx.Client, *, email: str, password: str = PASSWORD) -> str:
    r = c.post("/api/Auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["data"]["token"]


def teacher(
    c: httpx.Client,
    *,
    subjects=("Mathematics",),
    rate: int = 6000,
    currency: str = "usd",
    time_zone: str = "UTC",
    windows=ALL_WEEK,
) -> dict:
    """A teacher with a profile and weekly hours (all week by default)."""
    t = register(c, role="Teacher", time_zone=time_zone)
    r = t["client"].put(
        "/api/Teachers/me",
        json={
            "subjects": list(subjects),
            "hourlyRate": rate,
            "currency": currency,
            "timeZone": time_zone,
            "bio": "bio",
        },
    )
    assert r.status_code == 200, r.text
    r = t["client"].put("/api/Teachers/me/availability", json={"windows": list(windows)})
    assert r.status_code == 200, r.text
    return t


def parent(c: httpx.Client, *, children: int = 1) -> dict:
    """A parent with `children` children (ids in p["students"])."""
    p = register(c, role="Parent")
    p["students"] = [child(p["client"], full_name=f"Kid {i}")["id"] for i in range(children)]
    return p


def child(c: httpx.Client, *, full_name: str = "Kid") -> dict:
    r = c.post("/api/Students", json={"fullName": full_name})
    assert r.status_code == 201, r.text
    return r.json()["data"]


def slot(*, days: int = 2, hour: int = 10, minute: int = 0) -> str:
    """An ISO start time `days` ahead at hour:minute UTC."""
    base = datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0) + timedelta(days=days)
    return base.isoformat().replace("+00:00", "Z")


def book(
    p: dict,
    t: dict,
    *,
    starts_at: str | None = None,
    duration: int = 60,
    subject: str = "Mathematics",
    student: str | None = None,
) -> httpx.Response:
    return p["client"].post(
        "/api/Sessions/book",
        json={
            "teacherId": t["user"]["id"],
            "studentId": student or p["students"][0],
            "subject": subject,
            "startsAt": starts_at or slot(),
            "durationMinutes": duration,
        },
    )
