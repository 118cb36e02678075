"""The development settings that let calendar addresses reach plain http and private hosts are
refused in production."""

import pytest

from tutorbook.config import ConfigurationError, Settings

PRODUCTION = dict(
    env="production",
    database_url="postgresql+psycopg://db/x",
    jwt_secret="s" * 40,
    stripe_secret_key="sk_live_x",
    stripe_webhook_secret="whsec_x",
    smtp_url="smtp://mailer:secret@smtp.example.com:587",
    mail_from="Tutorbook <bookings@example.com>",
)


@pytest.mark.parametrize("name", ["calendar_allow_http", "calendar_allow_private"])
def test_production_refuses_the_calendar_development_settings(name):
    assert Settings(**PRODUCTION).resolved().is_production
    with pytest.raises(ConfigurationError, match=f"TUTORBOOK_{name.upper()}=true"):
        Settings(**PRODUCTION, **{name: True}).resolved()
