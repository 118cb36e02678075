"""A pytest plugin that starts the test process's clock at another instant (issue 32): loaded by
scripts/shifted-clock as `-p tests.support.shifted_clock` with TUTORBOOK_TEST_CLOCK set, e.g.
`2026-12-07T23:45:00Z`.

time-machine moves the wall clock (datetime.now, time.time, time.gmtime, ...) of every thread in
the process: the tests, the live app and the Stripe sandbox (both run in it); the clock ticks on
from the start given. The monotonic clock is left alone, so timeouts and sleeps keep working
(libfaketime, tried first, breaks Python's timed waits). The zone is the process's TZ.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import time_machine

_traveller: time_machine.travel | None = None


def pytest_configure(config) -> None:
    global _traveller
    start = os.environ.get("TUTORBOOK_TEST_CLOCK")
    if not start:
        return
    instant = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC)
    # An epoch, not an aware datetime: time-machine would set TZ from a datetime's zone.
    _traveller = time_machine.travel(instant.timestamp(), tick=True)
    _traveller.start()


def pytest_sessionstart(session) -> None:
    if _traveller is None:
        return
    local = datetime.now().astimezone()
    reporter = session.config.pluginmanager.getplugin("terminalreporter")
    reporter.write_line(
        f"shifted clock: now {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, "
        f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} in TZ={os.environ.get('TZ', '(unset)')}"
    )


def pytest_unconfigure(config) -> None:
    if _traveller is not None:
        _traveller.stop()
