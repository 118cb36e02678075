"""The layout rules that import contracts cannot see (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tutorbook"
# The CLI imports what each command needs when the command runs, so `tutorbook --help` stays fast.
ALLOWED = set((SRC / "cli").glob("*.py"))


def _function_level_imports(path: Path) -> list[int]:
    """Line numbers of import statements inside a function or method body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        inner.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    ]


def test_no_module_imports_inside_functions_except_the_cli():
    offenders = [
        where
        for path in sorted(SRC.rglob("*.py"))
        if path not in ALLOWED and "migrations" not in path.parts
        for where in (f"{path.relative_to(SRC.parent)}:{line}" for line in _function_level_imports(path))
    ]
    assert offenders == []


def test_the_check_finds_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import json\n    return json\n")
    assert _function_level_imports(module) == [2]


def test_the_domain_and_the_flows_load_no_web_framework():
    # Import-linter sees only the package's own chains; this sees what Python really loads.
    code = (
        "import sys, tutorbook.bookings.lifecycle, tutorbook.flows.booking, tutorbook.jobs, tutorbook.admin.console\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
# The three doors into the database (docs/architecture.md, "One transaction idiom"): `Services.tx`
# (write, async), `Services.read` (read, a ReadSession) and `Services.tx_sync` (write, sync). The
# scopes below them, and the ways in that were removed, are no entry point's business. (The bare
# engine stays for what is no use case: the start-up checks, readiness, the scheduler's claims.)
DOORS_ONLY = ("api", "web", "jobs", "cli")
BELOW_THE_DOORS = {
    "session_scope",
    "async_scope",
    "async_statement_scope",
    "async_read_scope",
    "async_connection",
    "coalescer",
    "sync_slot",
    "statement",
    "tx_in_thread",
    "DbSession",
}


def _names_below_the_doors(path: Path) -> list[str]:
    """`name@line` for each attribute or name of the layer below the doors used in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name in BELOW_THE_DOORS:
            found.append(f"{name}@{node.lineno}")
    return found


def test_routes_pages_jobs_and_the_cli_go_through_the_three_doors_only():
    offenders = [
        f"{path.relative_to(SRC.parent)}: {where}"
        for package in DOORS_ONLY
        for path in sorted((SRC / package).rglob("*.py"))
        for where in _names_below_the_doors(path)
    ]
    assert offenders == []


def test_the_doors_check_finds_a_session_scope(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f(db):\n    with db.session_scope() as s:\n        return s\n")
    assert _names_below_the_doors(module) == ["session_scope@2"]
