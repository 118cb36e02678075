"""The schema comes from Alembic and refuses statuses outside 0-3."""

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from tests.conftest import DATABASES, pg_database
from tutorbook.clock import utc_now
from tutorbook.migrate import MIGRATIONS, downgrade, upgrade


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_run_up_and_down_on_an_empty_database(kind, tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}" if kind == "sqlite" else pg_database("tutorbook_migration_check")
    upgrade(url)
    engine = sa.create_engine(url)
    assert "private_sessions" in sa.inspect(engine).get_table_names()
    downgrade(url, "base")
    assert "private_sessions" not in sa.inspect(engine).get_table_names()
    upgrade(url)
    engine.dispose()


def _insert_booking(conn, status):
    now = utc_now()
    uid, sid = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        sa.text(
            "INSERT INTO users (id,email,password_hash,full_name,role,time_zone,created_at) "
            "VALUES (:id,:e,'x','X','Parent','UTC',:now)"
        ),
        {"id": uid.hex if conn.dialect.name == "sqlite" else uid, "e": f"{uid}@x.test", "now": now},
    )
    conn.execute(
        sa.text("INSERT INTO students (id,parent_id,full_name,created_at) VALUES (:id,:p,'K',:now)"),
        {
            "id": sid.hex if conn.dialect.name == "sqlite" else sid,
            "p": uid.hex if conn.dialect.name == "sqlite" else uid,
            "now": now,
        },
    )
    pid = uid.hex if conn.dialect.name == "sqlite" else uid
    conn.execute(
        sa.text(
            "INSERT INTO private_sessions (id,parent_id,student_id,teacher_id,subject,starts_at,ends_at,price_amount,"
            "currency,status,created_at,updated_at) VALUES "
            "(:id,:p,:s,:p,'Maths',:a,:b,100,'usd',:status,:a,:a)"
        ),
        {
            "id": uuid.uuid4().hex if conn.dialect.name == "sqlite" else uuid.uuid4(),
            "p": pid,
            "s": sid.hex if conn.dialect.name == "sqlite" else sid,
            "a": now,
            "b": now.replace(year=now.year + 1),
            "status": status,
        },
    )


@pytest.mark.parametrize("status", [-1, 4, 99])
def test_the_database_refuses_a_status_outside_0_to_3(db, status):
    with pytest.raises(sa.exc.IntegrityError):
        with db.engine.begin() as conn:
            _insert_booking(conn, status)


def test_the_database_accepts_the_four_statuses(db):
    with db.engine.begin() as conn:
        for status in (0, 1, 2, 3):
            _insert_booking(conn, status)


def test_the_models_match_what_the_migrations_build(tmp_path):
    """Alembic's autogenerate finds nothing to add: a model change without its migration fails here."""
    if "postgresql" not in DATABASES:
        pytest.skip("compared on PostgreSQL (SQLite reflection cannot read expression indexes back)")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tutorbook.db import Base

    url = pg_database("tutorbook_migration_check")
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_the_migration_files_are_named_in_the_order_they_run():
    """Issue #27: the chain once ran 0006 -> 0008 -> 0009 -> 0007 -> 0010. Walking it from the
    base must now visit the files in the order of their names."""
    chain = list(reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions())))
    files = [Path(s.path).name for s in chain]
    assert files == sorted(files)
    assert [f[:4] for f in files] == [f"{n:04d}" for n in range(1, len(files) + 1)]
