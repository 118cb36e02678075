"""The suite's own PostgreSQL databases: named per run, dropped by the run that made them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import DATABASES, PG_ADMIN_URL, RUN_ID

pytestmark = pytest.mark.skipif("postgresql" not in DATABASES, reason="PostgreSQL not among TUTORBOOK_TEST_DATABASES")

SCRIPT = """
from tests.conftest import pg_database, drop_created_pg_databases, CREATED_PG_DATABASES
pg_database("tutorbook_probe")
print(CREATED_PG_DATABASES[0])
print(",".join(drop_created_pg_databases()))
"""


def exists(name: str) -> bool:
    engine = sa.create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            return found.first() is not None
    finally:
        engine.dispose()


def run_once() -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    made, dropped = out.stdout.strip().splitlines()
    return made, dropped


def test_each_run_names_its_own_databases_and_drops_them():
    first, dropped_first = run_once()
    second, dropped_second = run_once()
    assert first.startswith("tutorbook_probe_") and second.startswith("tutorbook_probe_")
    assert first != second  # two runs never share (or drop) one database
    assert dropped_first == first and dropped_second == second
    assert not exists(first) and not exists(second)


def test_this_run_names_carry_its_id(shared_db):
    if shared_db.is_sqlite:
        pytest.skip("PostgreSQL only")
    assert shared_db.engine.url.database == f"tutorbook_test_{RUN_ID}"
