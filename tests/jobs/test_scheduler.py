"""The schedule: inside the app by default (its /metrics counts the runs), and alone as
`tutorbook worker` (a separate process that stops cleanly on SIGTERM)."""

import asyncio
import dataclasses
import signal
import subprocess
import sys

import httpx

from tests import conftest
from tests.jobs.helpers import booked, row, set_columns, webhooks_off
from tests.support import payments as pay
from tests.support.processes import app_env
from tests.support.servers import ThreadedServer, free_port, http_get, wait_for
from tutorbook.app import create_app
from tutorbook.clock import utc_now
from tutorbook.jobs.scheduler import Scheduler
from tutorbook.metrics import Metrics

FAST = dict(
    job_expire_interval_s=0.2,
    job_complete_interval_s=0.2,
    job_meetings_interval_s=0.2,
    job_purge_interval_s=0.2,
    job_reconcile_interval_s=0,
)  # reconcile has its own tests


def stale_booking(api, c, sandbox) -> dict:
    webhooks_off(sandbox)
    b = booked(c)["b"]
    set_columns(api, b["id"], checkout_expires_at=utc_now())  # its time is up, for real
    return b


def test_the_app_runs_the_jobs_and_counts_them_in_metrics(api, c, sandbox, tmp_path):
    b = stale_booking(api, c, sandbox)
    port = free_port()
    settings = conftest.make_settings(
        api.state.db.url,
        tmp_path,
        public_url=f"http://127.0.0.1:{port}",
        sandbox_url=sandbox.base_url,
        jobs_enabled=True,
        **FAST,
    )
    server = ThreadedServer(create_app(settings, db=api.state.db), port=port).start()
    try:
        wait_for(lambda: row(api, b["id"]).status == 3, timeout=20, message="the scheduled expire job")
        text = wait_for(
            lambda: _get(f"{server.base_url}/metrics", every_job=True),
            timeout=10,
            message="a run of every scheduled job",
        )
    finally:
        server.stop()
    assert not server.thread.is_alive()  # the lifespan stopped the scheduler
    assert pay.sandbox_session(sandbox, b["stripeSessionId"])["status"] == "expired"
    assert 'tutorbook_jobs_items_total{job="expire",outcome="checkout_expired"} 1' in text
    for job in ("expire", "complete", "meeting-links", "purge"):
        assert f'tutorbook_jobs_runs_total{{job="{job}",result="ok"}}' in text
    assert 'tutorbook_bookings{status="Cancelled"} 1' in text
    assert 'tutorbook_jobs_last_success_timestamp_seconds{job="expire"}' in text


def test_a_failing_job_is_logged_and_counted_and_the_schedule_goes_on(api, sandbox, caplog):
    metrics = Metrics()
    svc = dataclasses.replace(
        api.state.services,
        settings=api.state.settings.model_copy(update={"job_reconcile_interval_s": 0.05}),
    )

    async def scenario():
        scheduler = Scheduler(svc, metrics=metrics, names=["reconcile"]).start()
        while metrics.value("tutorbook_jobs_runs_total", job="reconcile", result="error") < 2:
            await asyncio.sleep(0.05)
        await scheduler.stop()

    pay.sandbox_config(sandbox, fail_mode="error500")
    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        pay.sandbox_config(sandbox, fail_mode=None)
    assert any(r.getMessage() == "job failed" and r.job == "reconcile" for r in caplog.records)


def test_tutorbook_worker_runs_the_jobs_alone_and_stops_on_sigterm(api, c, sandbox, tmp_path):
    b = stale_booking(api, c, sandbox)
    metrics_port = free_port()
    env = app_env(
        database_url=api.state.db.url,
        sandbox_url=sandbox.base_url,
        var_dir=tmp_path,
        log_level="INFO",
        **FAST,
    )
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tutorbook.cli", "worker", "--metrics-port", str(metrics_port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: row(api, b["id"]).status == 3, timeout=30, message="the worker's expire job")
        text = wait_for(lambda: _get(f"http://127.0.0.1:{metrics_port}/metrics"), timeout=10, message="/metrics")
        refused = http_get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
        assert refused.status_code == 401 and refused.json()["success"] is False
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "worker.log").read_text()
    assert '"job": "expire"' in output and '"counts": {"checkout_expired": 1}' in output, output[-2000:]
    assert "scheduler stopped" in output
    assert 'tutorbook_jobs_items_total{job="expire",outcome="checkout_expired"} 1' in text
    assert pay.history(api.state.db, b["id"])[-1] == (0, 3, "checkout_expired")


def _get(url, *, every_job=False):
    """The /metrics text once the jobs have counted something (every scheduled job, if asked)."""
    try:
        r = http_get(url, timeout=2, headers={"Authorization": f"Bearer {conftest.METRICS_TOKEN}"})
    except httpx.HTTPError:
        return None
    jobs = ("expire", "complete", "meeting-links", "purge") if every_job else ("expire",)
    ran = all(f'tutorbook_jobs_runs_total{{job="{j}",result="ok"}}' in r.text for j in jobs)
    return r.text if r.status_code == 200 and ran and "tutorbook_jobs_items_total" in r.text else None


def test_routine_job_items_log_at_debug_and_findings_at_info(caplog):
    import logging
    import uuid

    from tutorbook.jobs.result import JobResult

    caplog.set_level(logging.DEBUG, logger="tutorbook.jobs")
    result = JobResult("expire")
    result.add(uuid.uuid4(), "checkout_expired")
    result.add(uuid.uuid4(), "stripe_unavailable", checkout_id="cs_1")
    result.add(uuid.uuid4(), "refunded", kind="paid_but_cancelled")
    levels = [(r.levelno, r.outcome) for r in caplog.records if r.getMessage() == "job item"]
    assert levels == [
        (logging.DEBUG, "checkout_expired"),
        (logging.INFO, "stripe_unavailable"),
        (logging.INFO, "refunded"),
    ]
