"""Once per interval across the cluster (jobs/claims.py): several workers (separate engines, as
separate processes would have) racing for the same sweep in one interval; exactly one runs it on
PostgreSQL. On SQLite (one process) the one process always wins. And `tutorbook worker --only`."""

import asyncio
import dataclasses
import threading

import sqlalchemy as sa
from typer.testing import CliRunner

from tutorbook import cli
from tutorbook.db import Database
from tutorbook.flows.services import build_services
from tutorbook.jobs import claims
from tutorbook.jobs.models import JobRunRecord
from tutorbook.jobs.scheduler import Scheduler
from tutorbook.metrics import Metrics

RACERS = 6


def _race(url: str, job: str, every: float) -> list[claims.Turn]:
    dbs = [Database(url, pool_size=1) for _ in range(RACERS)]
    start = threading.Barrier(RACERS)
    turns: list[claims.Turn] = []

    def racer(db):
        start.wait()
        turns.append(claims.claim(db, job=job, every=every))

    threads = [threading.Thread(target=racer, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for db in dbs:
        db.dispose()
    return turns


def test_workers_racing_for_one_interval_exactly_one_wins(db):
    turns = _race(db.url, "expire", 60)
    assert len(turns) == RACERS
    if db.is_sqlite:
        assert all(t.won for t in turns)  # one process on SQLite: it runs every interval, as before
        return
    assert sum(t.won for t in turns) == 1
    assert all(55 < t.wait_s <= 60.1 for t in turns if not t.won)
    # The same interval again: nobody wins it twice.
    assert not any(t.won for t in _race(db.url, "expire", 60))


def test_the_next_interval_is_won_again(db):
    if db.is_sqlite:
        return
    assert claims.claim(db, job="purge", every=0.3).won
    again = claims.claim(db, job="purge", every=0.3)
    assert not again.won and 0 < again.wait_s <= 0.3
    import time

    time.sleep(again.wait_s + 0.05)
    assert claims.claim(db, job="purge", every=0.3).won


def test_the_mail_queue_is_not_claimed(db):
    # Several mail workers share the outbox (each row claimed with SKIP LOCKED), none waits its turn.
    assert all(t.won for t in _race(db.url, "mail", 60))


def test_schedulers_in_several_workers_run_a_sweep_once_per_interval(api):
    """Three schedulers, each with its own engine, take their turn at `purge` at the same moment."""
    url = api.state.db.url
    workers = [build_services(api.state.settings, Database(url, pool_size=2)) for _ in range(3)]

    async def race():
        schedulers = [Scheduler(svc, metrics=Metrics(), names=["purge"]) for svc in workers]
        return await asyncio.gather(*(s.turn("purge", 60) for s in schedulers))

    try:
        waits = asyncio.run(race())
    finally:
        for svc in workers:
            svc.db.dispose()
    with api.state.db.session_scope() as session:
        ran = session.scalar(sa.select(sa.func.count()).select_from(JobRunRecord).where(JobRunRecord.job == "purge"))
    expected = 3 if api.state.db.is_sqlite else 1
    assert ran == expected
    assert all(w >= 55 for w in waits)  # winners and losers alike wait for the next interval


def test_a_failed_claim_is_logged_and_retried_next_interval(api, caplog):
    broken = dataclasses.replace(api.state.services, db=Database("postgresql+psycopg://nobody@127.0.0.1:1/none"))

    async def turn():
        return await Scheduler(broken, metrics=Metrics(), names=["purge"]).turn("purge", 42)

    assert asyncio.run(turn()) == 42
    assert any(r.getMessage() == "job claim failed" for r in caplog.records)


def test_worker_only_refuses_an_unknown_job_and_names_the_valid_ones():
    result = CliRunner().invoke(cli.app, ["worker", "--only", "mail,remindrs"])
    assert result.exit_code == 2
    out = result.output
    assert "unknown job 'remindrs'" in out
    for name in ("expire", "reconcile", "mail", "reminders", "calendar-sync"):
        assert name in out


def test_worker_only_picks_the_named_jobs_in_order():
    assert cli._job_names("mail, reminders") == ["reminders", "mail"]
    assert cli._job_names(None) == list(cli_jobs())


def cli_jobs():
    from tutorbook import jobs

    return jobs.JOBS


def test_worker_only_runs_just_the_named_jobs_and_stops_on_sigterm(api, c, sandbox, tmp_path):
    import json
    import signal
    import subprocess
    import sys

    from tests.jobs.helpers import row
    from tests.jobs.test_scheduler import FAST, stale_booking
    from tests.support.processes import app_env
    from tests.support.servers import wait_for

    b = stale_booking(api, c, sandbox)
    env = app_env(
        database_url=api.state.db.url, sandbox_url=sandbox.base_url, var_dir=tmp_path, log_level="INFO", **FAST
    )
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tutorbook.cli", "worker", "--only", "expire"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: row(api, b["id"]).status == 3, timeout=30, message="the worker's expire job")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(x) for x in (tmp_path / "worker.log").read_text().splitlines() if x.startswith("{")]
    [started] = [x for x in lines if x["msg"] == "scheduler started"]
    assert started["jobs"] == {"expire": FAST["job_expire_interval_s"]}
    assert {x["job"] for x in lines if x["msg"] == "job run"} == {"expire"}  # complete, purge... not run
