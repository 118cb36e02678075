"""The service-level tier: the use cases and flows driven directly, Stripe a fake in memory.

On each test database (`db`, from tests/conftest.py: SQLite, and PostgreSQL unless
TUTORBOOK_TEST_DATABASES says otherwise; `make test-service` runs it on SQLite alone, in seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.fake_gateway import FakeGateway
from tests.service.world import World, settings_for
from tutorbook.db import Database


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Iterator[World]:
    """A clean database, the services of one process on it, and a fresh fake Stripe account."""
    w = World(db, settings_for(db, tmp_path), FakeGateway())
    yield w
    w.close()
