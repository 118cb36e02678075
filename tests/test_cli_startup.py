"""Start-up failures of `tutorbook serve`, `worker` and `db upgrade`, run as the operator runs them
(a subprocess): one line on stderr saying what failed, where and what to set, and a non-zero
exit; the traceback only with `--debug`."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.support.servers import free_port
from tutorbook.migrate import upgrade

UNREACHABLE = "postgresql+psycopg://tutor:s3cret-pw@127.0.0.1:1/tutorbook"
COMMANDS = [["db", "upgrade"], ["worker"], ["serve", "--port", "0"]]


def tutorbook(*args: str, cwd, **settings) -> subprocess.CompletedProcess:
    """Run `tutorbook ARGS` with only these TUTORBOOK_* settings (and no .env: cwd is empty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORBOOK_")}
    env.update({f"TUTORBOOK_{k.upper()}": str(v) for k, v in settings.items()})
    env.setdefault("TUTORBOOK_VAR_DIR", str(cwd / "var"))
    env["TUTORBOOK_SANDBOX_PORT"] = str(free_port())
    return subprocess.run(
        [sys.executable, "-m", "tutorbook.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unreachable_database_is_one_line_naming_it_without_the_password(tmp_path, command):
    result = tutorbook(*command, cwd=tmp_path, database_url=UNREACHABLE)
    line = one_line(result)
    assert result.returncode == 1
    assert "cannot connect to the database at postgresql+psycopg://tutor:***@127.0.0.1:1/tutorbook" in line
    assert "Connection refused" in line and "TUTORBOOK_DATABASE_URL" in line
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_debug_adds_the_traceback_after_the_line(tmp_path):
    result = tutorbook("--debug", "db", "upgrade", cwd=tmp_path, database_url=UNREACHABLE)
    first, *rest = result.stderr.splitlines()
    assert result.returncode == 1 and first.startswith("error: cannot connect to the database")
    assert "Traceback (most recent call last):" in rest and "s3cret-pw" not in result.stderr


@pytest.mark.parametrize(
    "url,says",
    [
        ("nonsense://somewhere/db", "Can't load plugin"),
        ("not a url at all", "Could not parse"),
    ],
)
def test_a_malformed_database_url_is_one_line_with_an_example(tmp_path, url, says):
    result = tutorbook("worker", cwd=tmp_path, database_url=url)
    line = one_line(result)
    assert result.returncode == 1 and "TUTORBOOK_DATABASE_URL" in line and says in line
    assert "postgresql+psycopg://user:password@host:5432/tutorbook" in line


def test_a_bad_setting_value_is_one_line_naming_the_variable(tmp_path):
    result = tutorbook("serve", cwd=tmp_path, checkout_ttl_minutes="5")
    line = one_line(result)
    assert result.returncode == 2
    assert "TUTORBOOK_CHECKOUT_TTL_MINUTES='5'" in line and "greater than or equal to 30" in line


def test_a_var_dir_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = tutorbook("db", "upgrade", cwd=tmp_path, var_dir=blocker / "var")
    line = one_line(result)
    assert result.returncode == 1
    assert f"cannot write to the var directory {blocker / 'var'}" in line and "TUTORBOOK_VAR_DIR" in line


def test_a_sqlite_file_in_a_place_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    url = f"sqlite:///{blocker}/db/tutorbook.db"
    result = tutorbook("db", "upgrade", cwd=tmp_path, database_url=url, jwt_secret="x" * 40)
    line = one_line(result)
    assert result.returncode == 1 and url in line and "TUTORBOOK_DATABASE_URL" in line


def test_a_port_in_use_is_one_line_before_anything_else_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tutorbook("serve", "--port", str(port), cwd=tmp_path)
    line = one_line(result)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for Tutorbook: address already in use" in line and "--port" in line
    assert not (tmp_path / "var" / "tutorbook.db").exists()  # nothing migrated


def test_a_failing_migration_is_one_line_and_alembic_says_nothing_more(tmp_path):
    url = f"sqlite:///{tmp_path / 'tb.db'}"
    upgrade(url)
    with sqlite3.connect(tmp_path / "tb.db") as conn:  # as if migrated by a newer Tutorbook
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    result = tutorbook("db", "upgrade", cwd=tmp_path, database_url=url)
    line = one_line(result)
    assert result.returncode == 1
    assert f"migrating the database at {url} to head failed" in line and "9999_from_the_future" in line


NEEDS_TABLES = [["mail", "list"], ["report", "orphaned"], ["jobs", "run", "expire"], ["mail", "show", "1"]]


@pytest.mark.parametrize("command", NEEDS_TABLES, ids=" ".join)
def test_a_command_on_a_database_without_its_tables_says_to_run_db_upgrade(tmp_path, command):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = tutorbook(*command, cwd=tmp_path, database_url=f"sqlite:///{empty}", jobs_enabled="false")
    line = one_line(result)
    assert result.returncode == 1
    assert "no Tutorbook tables" in line and "run `tutorbook db upgrade`" in line


def test_make_run_takes_the_port_and_host_as_variables():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dry = subprocess.run(
        ["make", "-n", "-C", root, "run", "PORT=8080", "HOST=0.0.0.0"], capture_output=True, text=True, timeout=60
    )
    assert "tutorbook serve --host 0.0.0.0 --port 8080" in dry.stdout, dry.stdout + dry.stderr
