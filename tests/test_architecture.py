"""The layout rules that import contracts cannot see (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tutorbook"
# The CLI imports what each command needs when the command runs, so `tutorbook --help` stays fast.
ALLOWED = {SRC / "cli.py"}


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
