"""Weekly series (issue #29) at the service level: the world of tests/service (the fake Stripe)."""

from tests.service.conftest import world  # noqa: F401
