"""The long-lived collaborators a use case needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from tutorbook.config import Settings
from tutorbook.db import Database
from tutorbook.payments.gateway import StripeGateway


@dataclass
class Services:
    settings: Settings
    db: Database
    gateway: StripeGateway
    meetings: Any = None  # tutorbook.meetings provider (primary)
    meetings_fallback: Any = None

    async def tx(self, fn, /, **kwargs):
        """Run `fn(session, **kwargs)` in one transaction on a worker thread."""
        return await run_in_threadpool(self.tx_sync, fn, **kwargs)

    def tx_sync(self, fn, /, **kwargs):
        with self.db.session_scope() as session:
            return fn(session, **kwargs)


def build_services(settings: Settings, db: Database) -> Services:
    """Gateway and meeting providers from the configuration."""
    from tutorbook import meetings

    primary = meetings.provider_from_config(
        provider=settings.meeting_provider,
        jitsi_base_url=settings.jitsi_base_url,
        google=settings.google_config() if settings.meeting_provider == "google" else None,
    )
    fallback = meetings.provider_from_config(provider="jitsi", jitsi_base_url=settings.jitsi_base_url)
    return Services(settings, db, StripeGateway(settings), primary, fallback)
