"""A teacher's terms (teachers/policy.py), pure: the platform's defaults taken from the settings
field by field, and the one sentence the checkout and My Bookings show, at each edge of its
wording (no refund / a share / always free; once / up to n times / never; 1 hour / n hours)."""

from __future__ import annotations

import dataclasses

import pytest

from tutorbook.config import Settings
from tutorbook.teachers.policy import FIELDS, Terms


def settings(**values: int) -> Settings:
    return Settings(jwt_secret="t" * 40, **values)  # type: ignore[arg-type]


def test_the_platforms_terms_are_the_settings_each_in_its_own_field():
    s = settings(refund_full_before_hours=36, refund_late_percent=25, reschedule_deadline_hours=7, max_reschedules=3)
    assert Terms.platform(s) == Terms(
        full_refund_hours=36, late_refund_percent=25, reschedule_deadline_hours=7, max_reschedules=3
    )
    assert FIELDS == tuple(f.name for f in dataclasses.fields(Terms))


def test_terms_cannot_be_changed_once_made():
    terms = Terms(24, 0, 24, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        terms.full_refund_hours = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("terms", "sentence"),
    [
        (
            Terms(24, 0, 24, 1),
            "Free cancellation up to 24 hours before the start, no refund after that; "
            "change the time once, until 24 hours before the start.",
        ),
        (
            Terms(1, 50, 1, 2),
            "Free cancellation up to 1 hour before the start, a 50% refund after that; "
            "change the time up to 2 times, until 1 hour before the start.",
        ),
        (
            Terms(2, 1, 0, 0),
            "Free cancellation up to 2 hours before the start, a 1% refund after that; the time cannot be changed.",
        ),
        (
            Terms(48, 99, 12, 5),
            "Free cancellation up to 48 hours before the start, a 99% refund after that; "
            "change the time up to 5 times, until 12 hours before the start.",
        ),
        (
            Terms(48, 100, 0, 1),
            "Free cancellation (full refund) at any time; change the time once, until 0 hours before the start.",
        ),
        (Terms(0, 101, 3, 0), "Free cancellation (full refund) at any time; the time cannot be changed."),
    ],
)
def test_the_terms_in_one_sentence(terms: Terms, sentence: str):
    assert terms.sentence() == sentence


@pytest.mark.parametrize(
    "values",
    [{"refund_late_percent": -1}, {"refund_late_percent": 101}, {"refund_full_before_hours": -1}],
)
def test_the_platforms_terms_are_bounded_as_a_teachers_own(values: dict[str, int]):
    # A negative late share would make a cancellation's refund negative (bookings.policy.refund_amount).
    with pytest.raises(ValueError, match="refund_"):
        settings(**values)
    assert settings(refund_late_percent=100, refund_full_before_hours=0).refund_late_percent == 100
