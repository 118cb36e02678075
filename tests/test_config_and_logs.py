"""Configuration defaults, the production guard, and logs that never carry secrets."""

import json
import logging

import pytest
from pydantic import ValidationError

from tests.support.servers import http_client
from tutorbook.config import CHECKOUT_MARGIN_MINUTES, ConfigurationError, Settings
from tutorbook.logs import JsonFormatter, RequestIdFilter, redact, request_id_var


def test_no_configuration_means_sqlite_in_var_and_secrets_kept_across_restarts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = Settings().resolved()
    assert first.database_url == "sqlite:///var/tutorbook.db"
    assert first.public_url == "http://127.0.0.1:8000" and first.uses_sandbox
    assert len(first.jwt_secret) > 32 and first.stripe_webhook_secret.startswith("whsec_")
    again = Settings().resolved()
    assert (again.jwt_secret, again.stripe_webhook_secret) == (first.jwt_secret, first.stripe_webhook_secret)


def test_production_refuses_sqlite_and_generated_secrets_and_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as exc:
        Settings(env="production").resolved()
    for name in (
        "TUTORBOOK_DATABASE_URL",
        "TUTORBOOK_JWT_SECRET",
        "TUTORBOOK_STRIPE_SECRET_KEY",
        "TUTORBOOK_STRIPE_WEBHOOK_SECRET",
        "TUTORBOOK_SMTP_URL",
        "TUTORBOOK_MAIL_FROM",
    ):
        assert name in str(exc.value)
    ok = Settings(
        env="production",
        database_url="postgresql+psycopg://db/x",
        jwt_secret="s" * 40,
        stripe_secret_key="sk_live_x",
        stripe_webhook_secret="whsec_x",
        smtp_url="smtp://mailer:secret@smtp.example.com:587",
        mail_from="Tutorbook <bookings@example.com>",
    ).resolved()
    assert ok.is_production and not ok.uses_sandbox


def test_cors_origins_accept_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("TUTORBOOK_CORS_ORIGINS", "http://localhost:4200, https://app.example.com")
    assert Settings().cors_origins == ["http://localhost:4200", "https://app.example.com"]


def test_json_log_lines_carry_the_request_id_and_redact_secrets():
    record = logging.makeLogRecord(
        {
            "name": "t",
            "levelname": "INFO",
            "msg": "login password=hunter2 ok",
            "token": "eyJabc",
            "cardNumber": "4242",
            "booking_id": "b1",
        }
    )
    token = request_id_var.set("req-123")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-123" and line["booking_id"] == "b1"
    assert "hunter2" not in json.dumps(line) and line["token"] == "***" and line["cardNumber"] == "***"


def test_redact_walks_nested_structures():
    assert redact({"user": {"password": "x", "name": "n"}, "items": [{"authorization": "Bearer t"}]}) == {
        "user": {"password": "***", "name": "n"},
        "items": [{"authorization": "***"}],
    }


def test_the_api_never_logs_a_password(api, caplog):

    caplog.set_level(logging.DEBUG)
    with http_client(base_url=api.state.base_url) as c:
        c.post(
            "/api/Auth/register",
            json={"email": "log@example.com", "password": "very-secret-pw-123", "fullName": "L", "role": "Parent"},
        )
        c.post("/api/Auth/login", json={"email": "log@example.com", "password": "very-secret-pw-123"})
    assert caplog.records and "very-secret-pw-123" not in caplog.text


def test_every_setting_is_in_the_readmes_table():
    """Every TUTORBOOK_* setting is documented where operators look for it."""
    from pathlib import Path

    from tutorbook.config import Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    names = [f"TUTORBOOK_{name.upper()}" for name in Settings.model_fields]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("ttl", [1440, 1500])
def test_a_checkout_ttl_that_would_put_expires_at_past_stripes_24_hours_is_refused(monkeypatch, ttl):
    """Tutorbook adds a minute to the TTL: 1440 would make every checkout's expires_at 24 h 01 min
    after creation, which Stripe refuses."""
    monkeypatch.setenv("TUTORBOOK_CHECKOUT_TTL_MINUTES", str(ttl))
    with pytest.raises(ValidationError) as refused:
        Settings()
    [error] = refused.value.errors()
    assert error["loc"] == ("checkout_ttl_minutes",) and "30 to 1439 minutes" in error["msg"]


@pytest.mark.parametrize("ttl", [30, 1439])
def test_the_checkout_ttls_at_the_ends_keep_expires_at_inside_stripes_window(monkeypatch, ttl):
    monkeypatch.setenv("TUTORBOOK_CHECKOUT_TTL_MINUTES", str(ttl))
    minutes = Settings().checkout_ttl_minutes + CHECKOUT_MARGIN_MINUTES
    assert 30 <= minutes <= 24 * 60
