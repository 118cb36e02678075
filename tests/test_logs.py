"""Logs a person can read on a terminal, JSON lines elsewhere and in production; no secrets in either."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tutorbook.logs import JsonFormatter, RequestIdFilter, TextFormatter, configure_logging, request_id_var

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SECRETS = ("hunter2", "eyJsecret", "4242424242424242", "s3cr3t-in-trace")
# time, level, logger, message, then key=value extras and the request id
READABLE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+ +\S.*$")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def record_with_secrets() -> logging.LogRecord:
    """A logged event: a message with an inline secret, extras (some secret), a request id, an exception."""
    try:
        raise ValueError("cannot charge token=s3cr3t-in-trace")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.makeLogRecord(
        {
            "name": "tutorbook.bookings",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "login password=hunter2 for %s",
            "args": ("ada@example.com",),
            "exc_info": exc_info,
            "booking_id": "b-1",
            "path": "/api/Sessions/my bookings",
            "amount": 5000,
            "authorization": "Bearer eyJsecret",
            "card": {"number": "4242424242424242", "brand": "visa"},
            "color_message": "\x1b[1mlogin\x1b[0m",
        }
    )
    token = request_id_var.set("req-42")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    return record


def test_a_text_line_has_time_level_logger_message_extras_and_request_id_and_no_secret():
    text = TextFormatter().format(record_with_secrets())
    first, *trace = text.split("\n")
    assert READABLE.match(first), first
    assert " WARNING " in first and " tutorbook.bookings " in first
    assert "login password=*** for ada@example.com" in first
    assert 'booking_id=b-1 path="/api/Sessions/my bookings" amount=5000' in first
    assert "authorization=***" in first and "card=***" in first
    assert first.endswith("[req req-42]")
    assert trace and all(line.startswith("    ") for line in trace)  # the traceback, indented under its event
    assert trace[-1].strip() == "ValueError: cannot charge token=***"
    assert not ANSI.search(text) and "color_message" not in text
    for secret in SECRETS:
        assert secret not in text


def test_colour_marks_the_level_and_leaves_the_same_words():
    record = record_with_secrets()
    coloured = TextFormatter(colour=True).format(record)
    assert "\x1b[33mWARNING" in coloured  # yellow warning
    assert ANSI.sub("", coloured) == TextFormatter().format(record)


def test_an_event_without_request_shows_no_request_id_and_a_multiline_message_stays_one_event():
    record = logging.makeLogRecord({"name": "tutorbook.jobs", "levelname": "INFO", "msg": "expired\n3 bookings"})
    RequestIdFilter().filter(record)
    line = TextFormatter().format(record)
    assert "[req" not in line
    assert line.endswith("expired\n    3 bookings")


def test_a_json_line_keeps_its_fields_and_redacts_the_exception_too():
    line = json.loads(JsonFormatter().format(record_with_secrets()))
    assert line["level"] == "warning" and line["logger"] == "tutorbook.bookings"
    assert line["request_id"] == "req-42" and line["booking_id"] == "b-1" and line["amount"] == 5000
    assert line["msg"] == "login password=*** for ada@example.com"
    assert line["authorization"] == "***" and line["card"] == "***"
    assert line["exc"].endswith("ValueError: cannot charge token=***")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert "color_message" not in line
    for secret in SECRETS:
        assert secret not in json.dumps(line)


@pytest.fixture
def root_logger():
    """configure_logging replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(stream, **options) -> str:
    configure_logging(stream=stream, **options)
    logging.getLogger("tutorbook.test").info("booked", extra={"booking_id": "b-9", "token": "eyJsecret"})
    return stream.getvalue()


def test_a_terminal_in_development_gets_coloured_readable_lines(root_logger, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = emit(Terminal())
    assert ANSI.search(out)
    assert READABLE.match(ANSI.sub("", out).rstrip("\n"))
    assert "eyJsecret" not in out


def test_no_color_keeps_a_terminal_readable_without_colour(root_logger, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    out = emit(Terminal())
    assert not ANSI.search(out) and READABLE.match(out.rstrip("\n"))


@pytest.mark.parametrize(
    "stream, options",
    [(io.StringIO(), {}), (Terminal(), {"production": True}), (Terminal(), {"json_lines": True})],
    ids=["not-a-terminal", "production-on-a-terminal", "forced"],
)
def test_json_lines_when_not_a_terminal_or_in_production_or_asked(root_logger, stream, options):
    line = json.loads(emit(stream, **options))
    assert line["msg"] == "booked" and line["booking_id"] == "b-9" and line["token"] == "***"


def test_log_json_false_gives_readable_lines_without_colour_off_a_terminal(root_logger):
    out = emit(io.StringIO(), json_lines=False)
    assert READABLE.match(out.rstrip("\n")) and not ANSI.search(out)


# -- the real command, on a pipe and on a pseudo-terminal ------------------------------------------

TUTORBOOK = Path(sys.executable).with_name("tutorbook")


def run_db_upgrade(tmp_path: Path, *, terminal: bool) -> str:
    """`tutorbook db upgrade` on a fresh SQLite file (Alembic logs each migration); its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORBOOK_") and k != "NO_COLOR"}
    env |= {"TUTORBOOK_VAR_DIR": str(tmp_path / "var"), "TUTORBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    if not terminal:
        done = subprocess.run([str(TUTORBOOK), "db", "upgrade"], env=env, capture_output=True, timeout=60, check=True)
        return done.stderr.decode()
    controller, terminal_end = os.openpty()
    proc = subprocess.Popen([str(TUTORBOOK), "db", "upgrade"], env=env, stdout=terminal_end, stderr=terminal_end)
    os.close(terminal_end)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        assert proc.wait(60) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_the_command_writes_readable_lines_on_a_terminal_and_json_on_a_pipe(tmp_path):
    on_terminal = [ANSI.sub("", line) for line in run_db_upgrade(tmp_path / "a", terminal=True).splitlines()]
    migrations = [line for line in on_terminal if "alembic.runtime.migration" in line]
    assert migrations and all(READABLE.match(line) for line in migrations)
    assert any("Running upgrade  -> 0001" in line for line in migrations)
    on_pipe = [json.loads(line) for line in run_db_upgrade(tmp_path / "b", terminal=False).splitlines()]
    assert any(e["logger"] == "alembic.runtime.migration" and "-> 0001" in e["msg"] for e in on_pipe)
