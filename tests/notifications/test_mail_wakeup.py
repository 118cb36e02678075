"""LISTEN/NOTIFY: on PostgreSQL a confirmation email leaves the mail worker as soon as the payment
commits, not at its next poll. The poll interval is set to 60 s here, so an email within a few
seconds can only come from the wake-up (this asserts the wake-up, not a speed)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import sqlalchemy as sa

from tests.jobs.helpers import confirmed
from tests.support.servers import wait_for
from tutorbook.jobs.scheduler import Scheduler
from tutorbook.jobs.wakeup import libpq_url
from tutorbook.metrics import Metrics
from tutorbook.notifications import repository as outbox

POLL_S = 60


class Worker:
    """A mail worker's schedule (as `tutorbook worker --only mail` runs it) in a thread of its own."""

    def __init__(self, svc) -> None:
        self.svc, self.metrics = svc, Metrics()
        self.scheduler: Scheduler | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.scheduler = Scheduler(self.svc, metrics=self.metrics, names=["mail"]).start()
        while not self._stop.is_set():
            await asyncio.sleep(0.02)
        await self.scheduler.stop()

    def runs(self) -> float:
        return self.metrics.value("tutorbook_jobs_runs_total", job="mail", result="ok")

    def __enter__(self) -> Worker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)


# Only this test database's listeners: another run (the other xdist worker of make test, another
# checkout) has its own on the same server.
THIS_DATABASE = "datname = current_database()"


def _listening(api) -> bool:
    with api.state.db.engine.connect() as conn:
        query = f"SELECT count(*) FROM pg_stat_activity WHERE query = :q AND state = 'idle' AND {THIS_DATABASE}"
        return conn.execute(sa.text(query), {"q": f"LISTEN {outbox.CHANNEL}"}).scalar() > 0


def test_a_confirmation_email_leaves_at_once_not_at_the_next_poll(api, c, smtp, mail_svc):
    settings = mail_svc.settings.model_copy(update={"job_mail_interval_s": POLL_S})
    svc = dataclasses.replace(mail_svc, settings=settings)
    with Worker(svc) as worker:
        if api.state.db.is_sqlite:
            wait_for(lambda: worker.scheduler is not None, timeout=10, message="the worker")
            assert not worker.scheduler._wake  # no LISTEN on SQLite: the worker polls, as before
            return
        wait_for(lambda: _listening(api), timeout=20, message="the worker's LISTEN")
        wait_for(lambda: worker.runs() >= 1, timeout=20, message="the worker's first run")
        ran = worker.runs()
        x = confirmed(c)
        committed = time.monotonic()
        [email] = wait_for(lambda: smtp.inbox.to(x["p"]["email"]), timeout=5, message="the confirmation email")
        took = time.monotonic() - committed
        # The run that sent it counts itself once it has marked the row sent, a moment after the
        # SMTP server has the message: wait for that before stopping the worker.
        wait_for(lambda: worker.runs() > ran, timeout=5, message="the run the NOTIFY started")
    assert email["Subject"].startswith("Booking confirmed")
    assert took < 5  # a run the NOTIFY started, long before the 60 s poll


def test_a_notify_is_delivered_on_commit_and_dropped_on_rollback(db):
    """NOTIFY is transactional: a rolled-back enqueue wakes nobody."""
    if db.is_sqlite:
        return
    import psycopg

    with psycopg.connect(libpq_url(db.url), autocommit=True) as listener:
        listener.execute(f"LISTEN {outbox.CHANNEL}")
        with db.session_scope() as session:
            outbox._wake_workers(session)
        assert len(list(listener.notifies(timeout=2, stop_after=1))) == 1
        session = db.sessions()
        outbox._wake_workers(session)
        session.rollback()
        session.close()
        assert list(listener.notifies(timeout=1)) == []


def test_the_worker_listens_again_after_losing_its_connection(api, c, smtp, mail_svc):
    """PostgreSQL restarted or a network blip: the listening connection dies, the worker connects
    again (and runs once then, for what was enqueued meanwhile), and wake-ups work again."""
    if api.state.db.is_sqlite:
        return
    settings = mail_svc.settings.model_copy(update={"job_mail_interval_s": POLL_S})
    svc = dataclasses.replace(mail_svc, settings=settings)
    with Worker(svc) as worker:
        wait_for(lambda: _listening(api), timeout=20, message="the worker's LISTEN")
        with api.state.db.engine.begin() as conn:
            killed = conn.execute(
                sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = :q AND {THIS_DATABASE}"),
                {"q": f"LISTEN {outbox.CHANNEL}"},
            ).scalars().all()
        assert killed == [True]
        x = confirmed(c)  # enqueued while nobody listens
        [email] = wait_for(lambda: smtp.inbox.to(x["p"]["email"]), timeout=10, message="the email after reconnecting")
        wait_for(lambda: _listening(api), timeout=10, message="LISTEN again")
        ran = worker.runs()
        y = confirmed(c)
        started = time.monotonic()
        wait_for(lambda: smtp.inbox.to(y["p"]["email"]), timeout=5, message="a wake-up on the new connection")
        assert time.monotonic() - started < 5
        # That run counts itself a moment after the SMTP server has the message.
        wait_for(lambda: worker.runs() > ran, timeout=5, message="the run the NOTIFY started")
    assert email["Subject"].startswith("Booking confirmed")
