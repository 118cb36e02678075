"""Issue #31: with tracing on, a booking, its Stripe call, its webhook and its emails are one trace
(the Checkout Session carries the booking's traceparent, the outbox rows the webhook's)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import make_settings
from tests.jobs.helpers import booked
from tests.support import payments as pay
from tests.support.servers import ThreadedServer, http_client, wait_for
from tutorbook import telemetry, tracing
from tutorbook.app import create_app
from tutorbook.bookings.lifecycle import Status
from tutorbook.clock import utc_now
from tutorbook.db import Database
from tutorbook.flows import mail as mail_flow
from tutorbook.notifications import repository as outbox


@pytest.fixture
def traced(db, sandbox, smtp, tmp_path):
    """An app of its own with tracing on (spans kept in memory), the sandbox delivering to it,
    and its services with the test SMTP server (what a mail worker has)."""
    spans = InMemorySpanExporter()
    tele = telemetry.setup(make_settings(db.url, tmp_path, tracing="console"), processor=SimpleSpanProcessor(spans))
    traced_db = Database(db.url, pool_size=5)  # made with tracing on: its engines are traced
    port_app = create_app(make_settings(db.url, tmp_path, sandbox_url=sandbox.base_url), db=traced_db)
    server = ThreadedServer(tele.instrument_app(port_app)).start()
    pay.sandbox_config(
        sandbox,
        webhook_url=server.base_url + "/api/StripeWebhook/webhook",
        deliver_webhooks=True,
        latency_ms=0,
        fail_mode=None,
    )
    svc = port_app.state.services
    settings = svc.settings.model_copy(update={"smtp_url": smtp.url, "mail_from": "Tutorbook <mail@tutorbook.test>"})
    try:
        yield dataclasses.replace(svc, settings=settings), server, spans
    finally:
        server.stop()
        tele.shutdown()
        traced_db.dispose()


def test_a_booking_its_stripe_call_its_webhook_and_its_emails_share_one_trace(traced, smtp):
    svc, server, spans = traced
    with http_client(base_url=server.base_url, timeout=60) as c:
        x = booked(c)
        assert pay.pay(x["b"]["checkoutUrl"]).status_code == 303  # the sandbox then sends the webhook
    booking_id = x["b"]["id"]
    wait_for(lambda: pay.booking_row(svc.db, booking_id).status == Status.CONFIRMED, timeout=20, message="the webhook")

    def confirmation_sent():
        mail_flow.deliver(svc, now=utc_now())
        return smtp.inbox.to(x["p"]["email"])

    wait_for(confirmation_sent, timeout=20, interval=0.2, message="the confirmation email")

    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.kind == SpanKind.SERVER]
    [booking] = [s for s in servers if s.attributes.get("http.route") == "/api/Sessions/book"]
    trace_id = booking.context.trace_id
    stripe_calls = [s for s in finished if s.kind == SpanKind.CLIENT and "/v1/checkout/sessions" in str(s.attributes)]
    [webhook] = [s for s in finished if s.name == "stripe.webhook"]
    sent = [s for s in finished if s.name == "mail.send"]
    assert stripe_calls and all(s.context.trace_id == trace_id for s in stripe_calls)
    assert webhook.context.trace_id == trace_id
    assert webhook.attributes["tutorbook.stripe_event_type"] == "checkout.session.completed"
    assert webhook.links  # to the webhook request's own span
    assert len(sent) == 2 and all(s.context.trace_id == trace_id for s in sent)  # parent and teacher
    sql = [s for s in finished if s.context.trace_id == trace_id and s.attributes.get("db.system")]
    assert len(sql) > 5  # the statements of the booking, the confirmation and the mail
    # the outbox rows keep the trace they were written in
    with svc.db.session_scope() as session:
        rows = outbox.for_booking(session, uuid.UUID(booking_id))
    assert rows and all(r.trace_parent and r.trace_parent.split("-")[1] == format(trace_id, "032x") for r in rows)
    assert booking.attributes["tutorbook.request_id"]


def test_with_tracing_off_the_product_stores_no_trace(db):
    assert not tracing.enabled()
    assert tracing.traceparent() is None
    with tracing.continued("00-" + "1" * 32 + "-" + "2" * 16 + "-01", "x"):
        assert tracing.traceparent() is None
