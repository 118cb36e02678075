"""Sending the outbox: claim a batch (one short transaction), compose each message from the
booking as it is now (one transaction each), send them over one SMTP connection with no
transaction open, and record each answer (a compare-and-set on the claim).

A message is sent only while it is still true: "complete your payment" only while the booking
is Pending and unpaid, reminders only while it is Confirmed and ahead. Without
TUTORBOOK_SMTP_URL the messages go to the development mailbox instead, in the same transaction
that marks them sent. A crash after the server took a message and before it is marked sent
sends it again once the claim's lease ends (with the same Message-ID): at most once otherwise."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from tutorbook import tracing
from tutorbook.flows.mail_content import Skip, compose
from tutorbook.flows.services import Services
from tutorbook.notifications import render
from tutorbook.notifications import repository as outbox
from tutorbook.notifications import service as notices
from tutorbook.notifications.mailer import DeliveryError, Permanent, SmtpMailer, Transient
from tutorbook.notifications.render import Mail

log = logging.getLogger("tutorbook.mail")
P = ParamSpec("P")
T = TypeVar("T")

LEASE = timedelta(minutes=5)
# Recording that the SMTP server took a message, or giving back a batch the database lost mid-way,
# while the database is away for a moment (a restart, a failover, a dropped connection): tried
# again after these waits (~30 s in all) rather than left to the lease, which would send the
# message again in 5 minutes and keep the batch waiting that long (tests/cluster/test_hosts.py,
# drill 4).
RECORD_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
MAX_BACKOFF = timedelta(hours=6)
def deliver(
    svc: Services, *, now: datetime, limit: int | None = None, stop: threading.Event | None = None
) -> list[tuple[uuid.UUID, str]]:
    """One batch: (notification id, outcome) for each claimed notification. A message that cannot
    be built fails alone (marked failed with the reason); the rest of the batch goes on. Once
    `stop` is set (the worker is shutting down) the messages not yet handed to the server are
    given back ("released"), for another worker to send at once."""
    settings = svc.settings
    claimed = svc.tx_sync(outbox.claim, now=now, limit=limit or settings.mail_batch_size, lease=LEASE)
    if not claimed:
        return []
    ready: list[tuple[outbox.Claimed, Mail, EmailMessage]] = []
    results: list[tuple[uuid.UUID, str]] = []
    try:
        for item in claimed:
            with tracing.continued(item.trace_parent, "mail.compose", **_span_attributes(item)):
                built = _build(svc, item=item, now=now)
            if isinstance(built, str):
                results.append((item.id, built))
            else:
                ready.append((item, *built))
    except DBAPIError as exc:  # the database went away mid-batch: give back what is not done yet
        if _connection_lost(exc):
            done = {nid for nid, _ in results}
            for item in claimed:
                if item.id not in done:
                    _retrying(svc, outbox.release, item, now=now)
        raise
    if not ready:
        return results
    if not settings.smtp_url:
        for n, (item, mail, msg) in enumerate(ready):
            if stop is not None and stop.is_set():
                return results + _release(svc, [i for i, _m, _g in ready[n:]], now=now)
            with tracing.continued(item.trace_parent, "mail.keep", **_span_attributes(item)):
                svc.tx_sync(_keep, item=item, mail=mail, msg=msg, now=now)
            results.append((item.id, "kept"))
        return results
    mailer = SmtpMailer(settings.smtp_url, timeout=settings.smtp_timeout_seconds)
    try:
        with mailer.connect() as conn:
            for n, (item, _mail, msg) in enumerate(ready):
                if stop is not None and stop.is_set():
                    return results + _release(svc, [i for i, _m, _g in ready[n:]], now=now)
                with tracing.continued(item.trace_parent, "mail.send", **_span_attributes(item)):
                    try:
                        conn.send(msg)
                    except DeliveryError as exc:
                        results.append((item.id, _failed(svc, item, exc, now=now)))
                    else:
                        _record_sent(svc, item, now=now)
                        results.append((item.id, "sent"))
    except DeliveryError as exc:  # no connection: every message not yet answered waits
        done = {nid for nid, _ in results}
        log.warning("mail server unavailable; will retry", extra={"error": str(exc)[:200]})
        for item, _mail, _msg in ready:
            if item.id not in done:
                results.append((item.id, _failed(svc, item, Transient(str(exc)), now=now)))
    return results


def _span_attributes(item: outbox.Claimed) -> dict[str, str]:
    """What a mail span says of its notification (with tracing on; the address is left out)."""
    return {"notification_id": str(item.id), "mail_kind": item.kind}
def _connection_lost(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated


def _retrying(svc: Services, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn` in one transaction, tried again through a short loss of the database. The outbox's
    marks are compare-and-sets on the claim: one that committed before its answer was lost is
    not redone."""
    for wait in (*RECORD_RETRY_S, None):
        try:
            return svc.tx_sync(fn, *args, **kwargs)
        except DBAPIError as exc:
            if wait is None or not _connection_lost(exc):
                raise
            log.warning("outbox not updated yet; trying again", extra={"error": str(exc)[:200], "wait_s": wait})
            time.sleep(wait)
    raise AssertionError("unreachable")


def _record_sent(svc: Services, item: outbox.Claimed, *, now: datetime) -> None:
    """Mark `item` sent (the server took it), through a short loss of the database."""
    _retrying(svc, outbox.mark_sent, item, now=now, payload=_scrubbed(item))


def _release(svc: Services, items: list[outbox.Claimed], *, now: datetime) -> list[tuple[uuid.UUID, str]]:
    for item in items:
        svc.tx_sync(outbox.release, item, now=now)
    log.info("mail worker stopping: claimed messages given back", extra={"count": len(items)})
    return [(item.id, "released") for item in items]


def _build(svc: Services, *, item: outbox.Claimed, now: datetime) -> tuple[Mail, EmailMessage] | str:
    """The message of `item`, or the outcome when there is none to send now ("skipped", "waiting",
    or "failed" when it cannot be built: a template, a header or an address that will not go)."""
    settings = svc.settings
    try:
        composed = svc.tx_sync(compose, item=item, settings=settings, now=now)
        if isinstance(composed, Mail):
            key = f"notification-{item.id}"
            msg = render.message(
                composed, sender=settings.sender, public_url=settings.public_url, message_key=key, now=now
            )
            return composed, msg
    except SQLAlchemyError:
        raise  # the database, not this message: the claim's lease ends and the batch is tried again
    except Exception as exc:  # whatever this one message's data does, it fails alone
        error = f"the message could not be built: {type(exc).__name__}: {exc}"
        log.exception("mail not built; marked failed", extra={"notification_id": str(item.id), "kind": item.kind})
        svc.tx_sync(outbox.mark_failed, item, now=now, error=error, payload=_scrubbed(item))
        return "failed"
    if isinstance(composed, Skip):
        svc.tx_sync(outbox.mark_skipped, item, now=now, why=composed.why, payload=_scrubbed(item))
        return "skipped"
    svc.tx_sync(outbox.retry_later, item, now=now, at=composed.until, error=composed.why, count=False)
    return "waiting"


def _scrubbed(item: outbox.Claimed) -> dict[str, object] | None:
    """The payload to keep once a message is out: a reset token is wiped."""
    return {} if "token" in item.payload else None


def _failed(svc: Services, item: outbox.Claimed, exc: DeliveryError, *, now: datetime) -> str:
    settings = svc.settings
    if isinstance(exc, Permanent) or item.attempts >= settings.mail_max_attempts:
        svc.tx_sync(_give_up, item=item, error=str(exc), permanent=isinstance(exc, Permanent), now=now)
        log.error(
            "mail not delivered; given up",
            extra={"notification_id": str(item.id), "kind": item.kind, "to": item.to, "error": str(exc)[:200]},
        )
        return "failed"
    delay = min(timedelta(seconds=settings.mail_retry_base_seconds * 2 ** (item.attempts - 1)), MAX_BACKOFF)
    svc.tx_sync(outbox.retry_later, item, now=now, at=now + delay, error=str(exc))
    return "retry"


def _give_up(session: Session, *, item: outbox.Claimed, error: str, permanent: bool, now: datetime) -> None:
    if outbox.mark_failed(session, item, now=now, error=error, payload=_scrubbed(item)) and permanent:
        notices.mark_undeliverable(session, user_id=item.user_id, now=now)


def _keep(session: Session, *, item: outbox.Claimed, mail: Mail, msg: EmailMessage, now: datetime) -> None:
    """Into the development mailbox and marked sent, in one transaction."""
    if not outbox.mark_sent(session, item, now=now, payload=_scrubbed(item)):
        return
    outbox.keep(session, notification_id=item.id, to=mail.to, subject=str(msg["Subject"]), raw=msg.as_string(), now=now)


# -- composing ----------------------------------------------------------------------------


