"""A real SMTP server (aiosmtpd) started by the tests, and the mail job pointed at it."""

from __future__ import annotations

import dataclasses
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from tests.support.servers import free_port


class Inbox:
    """What the server accepted, parsed with the `email` package; addresses it refuses (550)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[str] = []  # every RCPT TO the server took, in order
        self.refuse: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(msg)
            self.recipients.extend(envelope.rcpt_tos)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def clear(self) -> None:
        self.messages.clear()
        self.recipients.clear()
        self.refuse.clear()


class SmtpServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?tls=none"

    def start(self) -> SmtpServer:
        self.controller = Controller(self.inbox, hostname=self.host, port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="session")
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    """The running SMTP server with an empty inbox (started again if a test stopped it)."""
    if smtp_server.controller is None:
        smtp_server.start()
    smtp_server.inbox.clear()
    yield smtp_server
    if smtp_server.controller is None:
        smtp_server.start()


@pytest.fixture
def mail_svc(api, smtp):
    """The app's services with TUTORBOOK_SMTP_URL set to the test server (what a worker has)."""
    svc = api.state.services
    settings = svc.settings.model_copy(update={"smtp_url": smtp.url, "mail_from": "Tutorbook <mail@tutorbook.test>"})
    return dataclasses.replace(svc, settings=settings)
