"""Logs: readable lines on a terminal, JSON lines otherwise and in production; a request id on
every line, secrets redacted in both."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
import uuid
from typing import Any, TextIO

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SECRET_KEYS = re.compile(r"pass(word)?|token|secret|authorization|card|cvc|cookie|signature", re.I)
_SECRET_INLINE = re.compile(
    r"(?i)(password|token|secret|cardNumber|cardCvc|authorization)([\"']?\s*[:=]\s*[\"']?)[^\s,&\"'}]+"
)


def redact(value: Any) -> Any:
    """Replace values under secret-looking keys (recursively) and inline key=value secrets."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEYS.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_INLINE.sub(r"\1\2***", value)
    return value


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# LogRecord attributes that are not extras; uvicorn's color_message repeats the message with ANSI codes.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "request_id", "asctime", "color_message"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra={...}` fields, redacted."""
    extras: dict[str, Any] = redact({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
    return extras


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC), level, logger, request_id, msg, the extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": redact(record.getMessage()),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


# ANSI SGR codes, used only when the stream is a terminal.
_RESET, _DIM = "\x1b[0m", "\x1b[2m"
_LEVEL_COLOURS = {
    "DEBUG": "\x1b[34m",  # blue
    "INFO": "\x1b[32m",  # green
    "WARNING": "\x1b[33m",  # yellow
    "ERROR": "\x1b[31m",  # red
    "CRITICAL": "\x1b[1;31m",  # bold red
}
_BARE_VALUE = re.compile(r"[^\s=\"'\x1b]+")


def _shown(value: object) -> str:
    """A value as key=value shows it: bare when unambiguous, otherwise quoted (JSON)."""
    if isinstance(value, str):
        return value if _BARE_VALUE.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


class TextFormatter(logging.Formatter):
    """One line a person can read in a terminal:

    ``14:03:07.412 INFO    tutorbook.http      request method=GET path=/health status=200 ms=1.2 [req 3f9c…]``

    local time, level, logger, message, the extras as key=value, the request id when there is
    one; then the traceback, indented. ``colour`` adds ANSI colours (level, dim time and keys).
    """

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour else text

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        level = self._paint(_LEVEL_COLOURS.get(record.levelname, ""), f"{record.levelname:<7}")
        message = redact(record.getMessage()).replace("\n", "\n    ")  # continuation lines indented
        parts = [self._paint(_DIM, when), level, self._paint(_DIM, f"{record.name:<19}"), message]
        extras = _extras(record)
        if extras:
            parts.append(" ".join(self._paint(_DIM, f"{k}=") + _shown(v) for k, v in extras.items()))
        rid = getattr(record, "request_id", "-")
        if rid != "-":
            parts.append(self._paint(_DIM, f"[req {rid}]"))
        line = " ".join(parts)
        if record.exc_info:
            trace = redact(self.formatException(record.exc_info))
            line += "\n" + "\n".join("    " + t for t in trace.splitlines())
        return line


def configure_logging(
    *, json_lines: bool | None = None, level: str = "INFO", production: bool = False, stream: TextIO | None = None
) -> None:
    """Install one handler on the root logger, writing to `stream` (default stderr).

    ``json_lines`` None (TUTORBOOK_LOG_JSON unset) means: JSON in production or when the stream
    is not a terminal, otherwise readable lines, coloured unless NO_COLOR is set.
    """
    stream = stream or sys.stderr
    tty = _isatty(stream)
    if json_lines is None:
        json_lines = production or not tty
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    colour = tty and not os.environ.get("NO_COLOR")
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter(colour=colour))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("httpx").setLevel("WARNING")
    logging.getLogger("stripe").setLevel("WARNING")
    logging.getLogger("alembic.runtime.plugins").setLevel("WARNING")  # a line per plugin at every start


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def new_request_id(incoming: str | None) -> str:
    """Keep a sane incoming X-Request-ID, otherwise make one."""
    if incoming and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", incoming):
        return incoming
    return uuid.uuid4().hex[:16]
