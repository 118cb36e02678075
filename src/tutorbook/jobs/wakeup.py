"""Waking the mail worker at once: on PostgreSQL it LISTENs on the outbox's channel over a direct
connection (TUTORBOOK_DATABASE_DIRECT_URL: LISTEN does not survive a transaction-mode PgBouncer,
which hands each transaction a different server connection). Enqueuing a notification NOTIFYs in
the same transaction (notifications/repository.py), so the worker hears of it when it commits.
Polling on the job's interval stays as the fallback: a lost connection, a NOTIFY missed while
reconnecting, or a notice that became due later are all found by the next poll. A connection
gone silent (a partition) is noticed within half a minute by libpq's TCP settings (db.TCP_SETTINGS),
then listened again.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from tutorbook.db import TCP_SETTINGS
from tutorbook.notifications.repository import CHANNEL

log = logging.getLogger("tutorbook.jobs")
RECONNECT_S = (1.0, 30.0)  # first and longest wait before listening again after a failure


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL (postgresql+psycopg://...) as psycopg's own connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(url: str, wake: asyncio.Event) -> None:
    """Set `wake` on each notification on the outbox channel, until cancelled; reconnect after
    a failure (and wake once then, for what was enqueued meanwhile)."""
    backoff = RECONNECT_S[0]
    while True:
        try:
            conninfo = make_conninfo(libpq_url(url), **TCP_SETTINGS)
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                log.info("listening for new mail", extra={"channel": CHANNEL})
                backoff = RECONNECT_S[0]
                wake.set()
                async for _notify in conn.notifies():
                    wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("mail wake-ups lost; polling until listening again", extra={"error": str(exc)[:200]})
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, RECONNECT_S[1])
