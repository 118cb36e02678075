"""The one source of the current time; everything below the edges takes `now` as an argument."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Treat naive datetimes as UTC and convert aware ones to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_z(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a trailing Z."""
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")
