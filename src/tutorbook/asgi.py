"""`uvicorn tutorbook.asgi:app` — the app from the environment's settings."""

from tutorbook.app import create_app
from tutorbook.config import get_settings
from tutorbook.logs import configure_logging

_settings = get_settings()
configure_logging(json_lines=_settings.log_json, level=_settings.log_level, production=_settings.is_production)
if _settings.tracing != "off":
    # Only then: with tracing off, nothing of OpenTelemetry is imported (tutorbook.tracing). Before
    # create_app, so that the engines it makes are traced.
    from tutorbook import telemetry  # noqa: E402

    app = telemetry.setup(_settings).instrument_app(create_app(_settings))
else:
    app = create_app(_settings)
