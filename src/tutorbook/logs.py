"""Structured logs: JSON when not on a terminal, a request id on every line, secrets redacted."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SECRET_KEYS = re.compile(r"pass(word)?|token|secret|authorization|card|cvc|cookie|signature", re.I)
_SECRET_INLINE = re.compile(
    r"(?i)(password|token|secret|cardNumber|cardCvc|authorization)([\"']?\s*[:=]\s*[\"']?)[^\s,&\"'}]+"
)


def redact(value):
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


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "request_id", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": redact(record.getMessage()),
        }
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        line.update(redact(extra))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        rid = getattr(record, "request_id", "-")
        when = self.formatTime(record, "%H:%M:%S")
        base = f"{when} {record.levelname:<7} [{rid}] {record.name}: {redact(record.getMessage())}"
        if extra:
            base += " " + " ".join(f"{k}={v}" for k, v in redact(extra).items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def configure_logging(*, json_lines: bool | None = None, level: str = "INFO") -> None:
    """Install one handler on the root logger."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("httpx").setLevel("WARNING")
    logging.getLogger("stripe").setLevel("WARNING")


def new_request_id(incoming: str | None) -> str:
    """Keep a sane incoming X-Request-ID, otherwise make one."""
    if incoming and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", incoming):
        return incoming
    return uuid.uuid4().hex[:16]
