"""SMTP delivery with the standard library's smtplib: `smtp://user:pass@host:587` (STARTTLS),
`smtps://user:pass@host:465` (implicit TLS). `?tls=none` on an smtp:// URL sends in the clear
(a relay on localhost, the tests' server); without it a server that offers no STARTTLS is refused.

Answers are sorted into Transient (try again later: no connection, 4xx) and Permanent (5xx:
the address or the message is refused for good)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from tutorbook.config import ConfigurationError


class DeliveryError(Exception):
    """A message was not delivered."""


class Transient(DeliveryError):
    """Not delivered now; try again later."""


class Permanent(DeliveryError):
    """Refused for good (5xx): marked failed and reported, never retried."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigurationError("TUTORBOOK_SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
        tls = parse_qs(parts.query).get("tls", [""])[0].lower()
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587),
            implicit_tls=implicit,
            starttls=not implicit and tls != "none",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def _classify(exc: Exception) -> DeliveryError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            return Permanent(f"recipient refused: {exc.recipients}")
        return Transient(f"recipient deferred: {exc.recipients}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Transient(f"SMTP authentication failed ({exc.smtp_code}); check TUTORBOOK_SMTP_URL")
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        kind = Permanent if exc.smtp_code >= 500 else Transient
        return kind(f"{exc.smtp_code} {detail}")
    return Transient(f"{type(exc).__name__}: {exc}")


class Connection:
    def __init__(self, client: smtplib.SMTP) -> None:
        self.client = client

    def send(self, msg: EmailMessage) -> None:
        """Deliver one message; Transient or Permanent when the server does not take it."""
        try:
            refused = self.client.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise _classify(exc) from exc
        if refused:  # some recipients refused, others taken: we send to one, so this is rare
            raise _classify(smtplib.SMTPRecipientsRefused(refused))


class SmtpMailer:
    """One connection per batch (`with mailer.connect() as conn: conn.send(msg)`)."""

    def __init__(self, url: str, *, timeout: float):
        self.config = SmtpConfig.from_url(url)
        self.timeout = timeout

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        c = self.config
        client: smtplib.SMTP
        try:
            if c.implicit_tls:
                client = smtplib.SMTP_SSL(c.host, c.port, timeout=self.timeout, context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(c.host, c.port, timeout=self.timeout)
            client.ehlo()
            if c.starttls:
                if not client.has_extn("starttls"):
                    client.close()
                    raise Transient("the SMTP server offers no STARTTLS (add ?tls=none to send in the clear)")
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if c.username:
                client.login(c.username, c.password or "")
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise _classify(exc) from exc
        try:
            yield Connection(client)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
