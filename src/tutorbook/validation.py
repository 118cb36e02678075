"""Constrained input types that every request schema, query and path value uses.

Whatever passes them can be stored and compared on SQLite and PostgreSQL alike: PostgreSQL
refuses NUL in text, neither database driver can encode a lone surrogate, a VARCHAR(n) refuses
longer text on PostgreSQL only, and datetime arithmetic overflows near years 1 and 9999. Each
of those used to be a 500 on one database and not the other; here each is a 422 on both.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, StringConstraints, TypeAdapter, ValidationError

MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_EMAIL = 254  # the users.email column
MAX_EXTERNAL_ID = 255  # Stripe ids; the stripe_* columns


def _bad_character(value: str, allowed: str = "", refused: tuple[str, ...] = ("Cc", "Cs")) -> str | None:
    """The first control character (Unicode Cc: C0, DEL, C1, which has NEL) or lone surrogate (Cs)
    not in `allowed`; or of any category in `refused`."""
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in refused:
            return ch
    return None


# One line refuses the Unicode line and paragraph separators too (Zl U+2028, Zp U+2029): they
# break lines in Python's str.splitlines, in email headers and in JavaScript, so a name holding
# one would be two lines wherever it is shown or sent.
_NOT_IN_A_LINE = ("Cc", "Cs", "Zl", "Zp")


def is_single_line(value: str, *, max_length: int) -> bool:
    """Whether `value` is one line of text of at most `max_length` characters."""
    return len(value) <= max_length and _bad_character(value, refused=_NOT_IN_A_LINE) is None


def small_number(value: str | None, *, digits: int = 6) -> int | None:
    """A form field of ASCII digits as an int (at most `digits` of them), otherwise None.
    (str.isdigit alone admits "²", which int() refuses, and int() refuses over 4,300 digits.)"""
    if value and len(value) <= digits and value.isascii() and value.isdigit():
        return int(value)
    return None


def single_line(value: str) -> str:
    """Text on one line: no control characters (NEL included) and no line or paragraph separator."""
    if (ch := _bad_character(value, refused=_NOT_IN_A_LINE)) is not None:
        kind = "control characters" if unicodedata.category(ch) in ("Cc", "Cs") else "line breaks"
        raise ValueError(f"must not contain {kind} (found U+{ord(ch):04X})")
    return value


def multi_line(value: str) -> str:
    """Text that may span lines: newlines and tabs, no other control character."""
    if (ch := _bad_character(value, allowed="\n\t")) is not None:
        raise ValueError(f"must not contain control characters other than newlines and tabs (found U+{ord(ch):04X})")
    return value


def any_text(value: str) -> str:
    """Text that is never stored as such (a password): anything a database driver could encode."""
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise ValueError("must be valid Unicode text (no lone surrogates)")
    return value


def in_range(value: datetime) -> datetime:
    """An aware instant between MIN_YEAR and MAX_YEAR, in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("give a time zone (for example 2026-12-01T15:00:00Z)")
    # The year is checked before converting: converting 9999-12-31T23:00-05:00 to UTC overflows.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    value = value.astimezone(UTC)
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


def day_in_range(value: date) -> date:
    """A calendar day between MIN_YEAR and MAX_YEAR (day arithmetic near years 1 and 9999 overflows)."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


def _stored_email(value: str) -> str:
    # Stored lower-cased; lower-casing can lengthen text ("İ" becomes two code points).
    if len(value.strip().lower()) > MAX_EMAIL:
        raise ValueError(f"must have at most {MAX_EMAIL} characters")
    return value


def crlf_to_lf(value: object) -> object:
    """CRLF (what HTML forms send) as LF, before the length is checked."""
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


# One line of text (names, subjects, a search term): Annotated[str, StringConstraints(max_length=200),
# AfterValidator(single_line)]. Text with line breaks (notes, a bio): add BeforeValidator(crlf_to_lf)
# before AfterValidator(multi_line), so CRLF from HTML forms counts as one character, as stored.
# (Written out where used, rather than made by a function, so type checkers see a type.)
Line = Annotated[str, AfterValidator(single_line)]


# A password: kept exactly as typed (InputModel strips other strings, never this one).
Secret = Annotated[str, StringConstraints(strip_whitespace=False), AfterValidator(any_text)]
# An email address as users type it (EmailStr: email-validator's syntax and length checks).
Email = Annotated[EmailStr, AfterValidator(_stored_email)]
# A login name: any single line that fits the column (an unknown one is just a failed login).
LoginEmail = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EMAIL), AfterValidator(single_line)]
# An id given by Stripe (or its `{CHECKOUT_SESSION_ID}` template): visible ASCII, at most 255 long.
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_EXTERNAL_ID, pattern=r"^[\x21-\x7e]+$")
]
# An instant: with a time zone, between MIN_YEAR and MAX_YEAR, returned in UTC.
Instant = Annotated[datetime, AfterValidator(in_range)]
# A calendar day (YYYY-MM-DD) between MIN_YEAR and MAX_YEAR.
Day = Annotated[date, AfterValidator(day_in_range)]

_EXTERNAL_ID = TypeAdapter(ExternalId)


def external_id_or_none(value: str | None) -> str | None:
    """`value` if it is a well-formed external id, otherwise None (for lenient page links)."""
    if value is None:
        return None
    try:
        return _EXTERNAL_ID.validate_python(value)
    except ValidationError:
        return None
