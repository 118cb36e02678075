"""OpenTelemetry tracing (issue #31), imported only when TUTORBOOK_TRACING is not `off`: by
`tutorbook.asgi` (each web process) and by `tutorbook worker`. With tracing off this module, and
with it OpenTelemetry, is never imported.

What is traced: each HTTP request (FastAPI; not /health, /metrics), each SQL statement of every
engine (sync and asyncio; `tracing.engine_made`), each outgoing HTTP call (aiohttp: the Stripe
SDK's async client; httpx: its sync client and the calendar fetcher), and the spans the product
opens itself through `tutorbook.tracing` (a Stripe webhook's handling, each mail composed and
sent). One booking is one trace: the Checkout Session carries the booking request's traceparent
in its metadata, the webhook's handling continues it, the outbox rows written there keep it
(`notifications.trace_parent`), and the mail worker's spans continue it again
(docs/operations.md, "Tracing")."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.engine import Engine

from tutorbook import tracing
from tutorbook.config import Settings

# Not traced: the load balancer's probes and Prometheus' scrapes (a span each, every second).
EXCLUDED_URLS = "/health/,/metrics"
_PROPAGATOR = TraceContextTextMapPropagator()


class OtelTracer:
    """`tutorbook.tracing.Tracer` over an OpenTelemetry TracerProvider."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("tutorbook")
        # The SQL instrumentation also counts connections in use: a metric we do not export.
        meter = NoOpMeterProvider().get_meter("tutorbook")
        self._connections = meter.create_up_down_counter("db.client.connections.usage")
        self._engines: set[int] = set()

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    @contextmanager
    def continued(self, traceparent: str | None, name: str, attributes: Mapping[str, Any]) -> Iterator[None]:
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        here = trace.get_current_span().get_span_context()
        # Continuing a stored trace from inside another (the webhook's HTTP request): linked.
        links = [Link(here)] if parent is not None and here.is_valid else None
        with self.tracer.start_as_current_span(name, context=parent, links=links, attributes=_named(attributes)):
            yield

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(_named(attributes))

    def engine_made(self, engine: Engine) -> None:
        if id(engine) not in self._engines:
            self._engines.add(id(engine))
            EngineTracer(self.tracer, engine, self._connections, enable_commenter=False)  # type: ignore[no-untyped-call]  # opentelemetry-instrumentation-sqlalchemy is untyped


class Telemetry:
    """Tracing switched on in this process: `instrument_app` for a web process, `shutdown` to
    flush the spans still buffered and switch it off again (tests)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = OtelTracer(provider)
        self._apps: list[FastAPI] = []
        self._log_filter = TraceIdFilter()

    def start(self) -> Telemetry:
        AioHttpClientInstrumentor().instrument(tracer_provider=self.provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=self.provider)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._log_filter)
        tracing.install(self.tracer)
        return self

    def instrument_app(self, app: FastAPI) -> FastAPI:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            meter_provider=NoOpMeterProvider(),
            excluded_urls=EXCLUDED_URLS,
            exclude_spans=["receive", "send"],  # a span per ASGI message is noise, and costs
        )
        self._apps.append(app)
        return app

    def shutdown(self) -> None:
        tracing.install(None)
        for app in self._apps:
            FastAPIInstrumentor.uninstrument_app(app)
        AioHttpClientInstrumentor().uninstrument()
        HTTPXClientInstrumentor().uninstrument()
        EngineTracer.remove_all_event_listeners()  # type: ignore[no-untyped-call]  # untyped, as above
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._log_filter)
        self.provider.shutdown()


class TraceIdFilter(logging.Filter):
    """A log line written inside a span carries its trace id (beside the request id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
        return True


def setup(
    settings: Settings,
    *,
    exporter: SpanExporter | None = None,
    processor: SpanProcessor | None = None,
) -> Telemetry:
    """Switch tracing on in this process as `settings` say (TUTORBOOK_TRACING=otlp: the standard
    OTEL_EXPORTER_OTLP_* variables say where to; console: on stderr). Tests pass their own
    `processor` (an in-memory exporter's).

    The provider is handed to each instrumentation, not made the global one: FastAPI's own
    telemetry switches itself on when a global provider is set, and would trace each request a
    second time."""
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "tutorbook"}
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    if processor is None:
        exporter = exporter or (OTLPSpanExporter() if settings.tracing == "otlp" else ConsoleSpanExporter())
        processor = BatchSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return Telemetry(provider).start()


def _named(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """`request_id` -> `tutorbook.request_id`; dotted names (`stripe.event_type`) kept; None dropped."""
    return {(k if "." in k else f"tutorbook.{k}"): v for k, v in attributes.items() if v is not None}
