"""Demo data: three teachers (different subjects, prices, currencies, zones) and a parent with two children."""

from __future__ import annotations

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import Session

from tutorbook.accounts import service as accounts
from tutorbook.accounts.models import Role, Student, User
from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.teachers import service as teachers
from tutorbook.teachers.slots import Window

DEMO_PASSWORD = "demo-lessons-at-tutorbook"  # passes the strength check (zxcvbn score 4)

TEACHERS = [
    (
        "ada@demo.example.com",
        "Ada Lovelace",
        ["Mathematics", "Computer Science"],
        4500,
        "usd",
        "America/New_York",
        "Patient maths tutor; algebra to calculus.",
    ),
    (
        "marie@demo.example.com",
        "Marie Curie",
        ["Chemistry", "Physics"],
        5000,
        "eur",
        "Europe/Berlin",
        "Lab-minded science lessons for secondary school.",
    ),
    (
        "sei@demo.example.com",
        "Sei Shonagon",
        ["Japanese", "Creative Writing"],
        3800,
        "gbp",
        "Asia/Tokyo",
        "Japanese for beginners and writing workshops.",
    ),
]
PARENT = ("parent@demo.example.com", "Pat Parent", "Europe/London")
CHILDREN = ["Robin Parent", "Sam Parent"]
# Monday-Friday 09:00-17:00 and Saturday 10:00-14:00, local to each teacher, every week.
WINDOWS = [Window(d, 9 * 60, 17 * 60) for d in range(5)] + [Window(5, 10 * 60, 14 * 60)]


def _user(session: Session, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == email))


def load(session: Session, *, hasher: PasswordHash, settings: Settings) -> list[tuple[Role, str, str]]:
    """Create what is missing; return (role, email, password) for every demo login."""
    now = utc_now()
    for email, name, subjects, rate, currency, zone, bio in TEACHERS:
        user = _user(session, email) or teachers.create_user(
            session,
            hasher=hasher,
            settings=settings,
            email=email,
            password=DEMO_PASSWORD,
            full_name=name,
            role=Role.TEACHER,
            time_zone=zone,
            now=now,
        )
        teachers.update_profile(
            session,
            teacher_id=user.id,
            fields={"subjects": subjects, "hourly_rate": rate, "currency": currency, "time_zone": zone, "bio": bio},
        )
        teachers.set_windows(session, teacher_id=user.id, new=WINDOWS)
    email, name, zone = PARENT
    parent = _user(session, email) or accounts.create_user(
        session,
        hasher=hasher,
        settings=settings,
        email=email,
        password=DEMO_PASSWORD,
        full_name=name,
        role=Role.PARENT,
        time_zone=zone,
        now=now,
    )
    have = set(session.scalars(sa.select(Student.full_name).where(Student.parent_id == parent.id)))
    for child in CHILDREN:
        if child not in have:
            accounts.add_student(session, parent_id=parent.id, fields={"full_name": child}, now=now)
    logins = [(Role.TEACHER, t[0], DEMO_PASSWORD) for t in TEACHERS]
    return logins + [(Role.PARENT, PARENT[0], DEMO_PASSWORD)]
