"""The Database's transaction scope."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.conftest import make_settings
from tutorbook.accounts.models import User
from tutorbook.clock import as_utc, utc_now
from tutorbook.db import TCP_SETTINGS, Database, ReadOnlySessionError, UTCDateTime, lost_race
from tutorbook.flows.services import build_services


def test_a_sqlite_scope_entered_in_one_thread_and_left_in_another_frees_the_writer_lock(tmp_path):
    """FastAPI runs a sync dependency's setup and teardown in different worker threads; the
    next writer must not wait (with an RLock the release failed and the lock stayed held)."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    scope = db.session_scope()
    with ThreadPoolExecutor(1) as a, ThreadPoolExecutor(1) as b:
        session = a.submit(scope.__enter__).result()
        session.execute(sa.text("SELECT 1"))
        b.submit(scope.__exit__, None, None, None).result()

    def write_again():
        with db.session_scope() as s:
            return s.execute(sa.text("SELECT 2")).scalar()

    result = []
    t = threading.Thread(target=lambda: result.append(write_again()), daemon=True)
    t.start()
    t.join(5)
    assert result == [2], "the writer lock stayed held"
    db.dispose()


def test_the_writer_lock_nests_in_its_thread_and_makes_other_threads_wait():
    from tutorbook.db import WriterLock

    lock = WriterLock()
    assert lock.acquire(1) and lock.acquire(1)  # nested in the same thread
    with ThreadPoolExecutor(1) as other:
        assert other.submit(lock.acquire, 0.2).result() is False  # held: the other thread gives up
        lock.release()
        assert other.submit(lock.acquire, 0.2).result() is False  # still held once
        lock.release()
        assert other.submit(lock.acquire, 0.2).result() is True
    lock.release()  # by this thread, though the other one took it
    assert lock.acquire(0.2)


def test_a_deadlock_or_serialization_failure_is_a_lost_race_and_other_errors_are_not():
    class Orig(Exception):
        def __init__(self, sqlstate):
            self.sqlstate = sqlstate

    def error(cls, sqlstate):
        return cls("UPDATE private_sessions ...", {}, Orig(sqlstate))

    assert lost_race(error(sa.exc.OperationalError, "40P01"))  # deadlock_detected
    assert lost_race(error(sa.exc.OperationalError, "40001"))  # serialization_failure
    assert lost_race(error(sa.exc.IntegrityError, "23P01"))  # exclusion_violation
    assert not lost_race(error(sa.exc.OperationalError, "57P01"))  # admin_shutdown: a real failure
    assert not lost_race(error(sa.exc.OperationalError, None))  # SQLite's "database is locked"


# -- Coalescer: many callers' one-row writes as one statement --------------------------------


def test_a_lone_item_is_written_at_once_and_items_arriving_meanwhile_share_the_next_write():
    import asyncio

    from tutorbook.db import Coalescer

    writes: list[list[int]] = []
    release = None

    async def write(items: list[int]) -> list[int]:
        writes.append(items)
        if len(writes) == 1:
            await release.wait()  # the first write is in flight while the others arrive
        return [item * 10 for item in items]

    async def main():
        nonlocal release
        release = asyncio.Event()
        batcher = Coalescer(write)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert writes == [[1]], "the first item is written without waiting for company"
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0)
        release.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert first == 10 and rest == [20, 30, 40], "each caller gets its own item's answer"
    assert writes == [[1], [2, 3, 4]], "the items that arrived during a write went in one write"


def test_a_failed_write_fails_each_of_its_callers_and_the_next_write_still_runs():
    import asyncio

    from tutorbook.db import Coalescer

    calls: list[list[str]] = []

    async def write(items: list[str]) -> list[str]:
        calls.append(items)
        if "bad" in items:
            raise RuntimeError("the statement failed")
        return [item.upper() for item in items]

    async def main():
        batcher = Coalescer(write, max_batch=2)
        # all three arrive before the first write runs: batches of at most two
        results = await asyncio.gather(*(batcher.submit(i) for i in ("a", "bad", "c")), return_exceptions=True)
        return results

    results = asyncio.run(main())
    assert calls == [["a", "bad"], ["c"]]
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], RuntimeError)
    assert results[2] == "C"


def test_a_write_that_answers_the_wrong_number_of_items_fails_its_callers_rather_than_leaving_them_waiting():
    import asyncio

    from tutorbook.db import Coalescer

    async def write(items: list[int]) -> list[int]:
        return items[:-1]  # one answer short

    async def main():
        batcher = Coalescer(write)
        return await asyncio.wait_for(
            asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True), timeout=5
        )

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results), results


def _write_a_user(session) -> None:
    session.add(
        User(
            email="reader@example.com",
            password_hash="x",
            full_name="Reader",
            role="Parent",
            created_at=utc_now(),
        )
    )
    session.flush()


def _update_users(session) -> None:
    session.execute(sa.update(User).values(full_name="changed"))


def _count_users(session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(User))


@pytest.mark.parametrize("write", [_write_a_user, _update_users])
def test_the_read_door_refuses_to_write_and_the_write_door_writes(db, tmp_path, write):
    svc = build_services(make_settings(db.url, tmp_path), db)

    async def through_the_doors():
        try:
            with pytest.raises(ReadOnlySessionError):
                await svc.read(write)
            before = await svc.read(_count_users)
            await svc.tx(_write_a_user)
            return before, await svc.read(_count_users)
        finally:
            await db.dispose_async()

    assert asyncio.run(through_the_doors()) == (0, 1)
    with pytest.raises(ReadOnlySessionError), db.session_scope(read_only=True) as session:
        write(session)


def test_every_postgresql_connection_gives_up_on_a_silent_peer(api):
    """A partition sends no RST: without libpq's TCP settings a query in flight waits a quarter of
    an hour and the mail worker's thread with it (tests/cluster/test_hosts.py, drill 3). The sync
    engine's connections, through PgBouncer or not, carry them; so does the LISTEN connection."""
    assert TCP_SETTINGS["tcp_user_timeout"] <= 30_000 and TCP_SETTINGS["keepalives"] == 1
    if api.state.db.is_sqlite:
        return
    for pgbouncer in (False, True):
        db = Database(api.state.db.url, pgbouncer=pgbouncer, use_async=False)
        try:
            with db.engine.connect() as conn:
                used = conn.connection.dbapi_connection.info.get_parameters()
        finally:
            db.dispose()
        assert {k: used.get(k) for k in TCP_SETTINGS} == {k: str(v) for k, v in TCP_SETTINGS.items()}


@pytest.mark.parametrize(
    "stored",
    [
        datetime(2026, 3, 29, 1, 0, 0, 120),  # naive: SQLite's, read as UTC
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=timezone(timedelta(hours=-5))),
        None,
    ],
)
def test_a_utc_datetime_is_read_as_the_type_said_it_would_be(db, stored):
    # UTCDateTime reads a value with one call instead of TypeDecorator's four (issue #33); what it
    # reads is still process_result_value's answer, through the database and without it.
    col = UTCDateTime()
    assert col.process_result_value(stored, db.engine.dialect) == (None if stored is None else as_utc(stored))
    with db.engine.connect() as conn:
        read = conn.execute(sa.select(sa.literal(stored, UTCDateTime()) if stored else sa.null().cast(col))).scalar()
    expected = None if stored is None else as_utc(stored)
    assert read == expected
    assert read is None or (read.tzinfo is UTC and read.utcoffset() == timedelta(0))
    processor = col.result_processor(db.engine.dialect, None)
    if processor is not None and db.engine.dialect.name == "postgresql" and stored is not None:
        assert processor(as_utc(stored)) == expected
