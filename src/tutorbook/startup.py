"""What `tutorbook serve`, `worker` and `db upgrade` check before they start, so that each
foreseeable failure reads as one line: what failed, where, and what to set.

The CLI prints StartupError's message (and the traceback only with `--debug`)."""

from __future__ import annotations

import errno
import logging
import socket
import tempfile
from pathlib import Path
from typing import Literal, Self

import sqlalchemy as sa
from alembic.util import CommandError
from pydantic import ValidationError

from tutorbook.db import make_engine
from tutorbook.migrate import upgrade

log = logging.getLogger("tutorbook.startup")

_SECRET_WORDS = ("secret", "key", "password")


class StartupError(Exception):
    """A start-up failure, said in one line; `exit_code` 2 for configuration, 1 otherwise."""

    def __init__(self, line: str, *, exit_code: int = 1):
        super().__init__(line)
        self.line, self.exit_code = line, exit_code


def hide_password(url: str) -> str:
    """The URL with its password replaced by ***, as it may be shown."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<not a URL>" if "@" in url else url


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0].strip()


def invalid_settings(exc: ValidationError) -> StartupError:
    """One line naming every TUTORBOOK_* variable pydantic refused, and why."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error.get("loc") else "?"
        name = f"TUTORBOOK_{field.upper()}"
        value = error.get("input")
        if field == "database_url" and isinstance(value, str):
            shown = f"={hide_password(value)!r}"
        elif isinstance(value, str | int | float) and not any(w in field for w in _SECRET_WORDS):
            shown = f"={value!r}"
        else:
            shown = ""
        parts.append(f"{name}{shown}: {error['msg']}")
    return StartupError(f"invalid setting {'; '.join(parts)} (fix it in the environment or .env)", exit_code=2)


def unwritable_var_dir(exc: OSError, var_dir: Path) -> StartupError:
    where = exc.filename or var_dir
    return StartupError(
        f"cannot write to the var directory {var_dir} ({where}: {exc.strerror or exc}); "
        "set TUTORBOOK_VAR_DIR to a writable directory"
    )


def check_var_dir(var_dir: Path) -> None:
    """The var directory exists (or can be made) and takes a new file."""
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=var_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise unwritable_var_dir(exc, var_dir) from exc


def check_database(url: str) -> None:
    """The database at `url` answers a query."""
    shown = hide_password(url)
    try:
        engine = make_engine(url, pool_size=1, echo=False)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise StartupError(
            f"TUTORBOOK_DATABASE_URL={shown!r} is not a database URL Tutorbook can use ({_first_line(exc)}); "
            "set it to e.g. postgresql+psycopg://user:password@host:5432/tutorbook or sqlite:///var/tutorbook.db"
        ) from exc
    except OSError as exc:  # the SQLite file's directory cannot be made
        raise StartupError(
            f"cannot create the directory of the SQLite database {shown} ({exc.strerror or exc}); "
            "set TUTORBOOK_DATABASE_URL (or TUTORBOOK_VAR_DIR) to a writable place"
        ) from exc
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise StartupError(
            f"cannot connect to the database at {shown}: {_first_line(exc)}; "
            "check that it is running and reachable, and TUTORBOOK_DATABASE_URL (host, port, user, password, name)"
        ) from exc
    finally:
        engine.dispose()


def check_tables(engine: sa.Engine) -> None:
    """The database has been migrated (Alembic's version table is there): a command that reads
    or writes Tutorbook's tables says what to run instead of failing on its first query."""
    try:
        migrated = sa.inspect(engine).has_table("alembic_version")
    except sa.exc.SQLAlchemyError:
        return  # unreachable or refused: the command's own first query says so
    if not migrated:
        raise StartupError(
            f"the database at {hide_password(engine.url.render_as_string(hide_password=False))} has no Tutorbook "
            "tables yet; run `tutorbook db upgrade` (it migrates the database TUTORBOOK_DATABASE_URL names)"
        )


def migrate(url: str, revision: str = "head", *, debug: bool = False) -> None:
    """Apply the migrations. Alembic's progress lines are held back and shown once it succeeds
    (at once with debug), so that a failure is one line."""
    held = _HeldLogs("alembic", show=debug)
    with held:
        try:
            upgrade(url, revision)
        except (CommandError, sa.exc.SQLAlchemyError) as exc:
            raise StartupError(
                f"migrating the database at {hide_password(url)} to {revision} failed: {_first_line(exc)}; "
                "`tutorbook --debug db upgrade` shows the details (a database migrated by a newer "
                "Tutorbook needs that version)"
            ) from exc
    held.replay()


class _HeldLogs(logging.Handler):
    """Collect one logger's records instead of passing them to the root's handlers."""

    def __init__(self, name: str, *, show: bool):
        super().__init__()
        self.logger, self.show = logging.getLogger(name), show
        self.records: list[logging.LogRecord] = []
        self.propagate = self.logger.propagate

    def __enter__(self) -> Self:
        if not self.show:
            self.logger.addHandler(self)
            self.logger.propagate = False
        return self

    def __exit__(self, *exc_info: object) -> Literal[False]:
        self.logger.removeHandler(self)
        self.logger.propagate = self.propagate
        return False

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def replay(self) -> None:
        for record in self.records:
            logging.getLogger(record.name).handle(record)


def check_port(host: str, port: int, *, what: str, hint: str) -> None:
    """Nothing else listens on host:port (checked by binding it for a moment)."""
    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        line = f"cannot listen on {host}:{port} for {what}: {why}; stop what uses it or {hint}"
        raise StartupError(line) from exc
