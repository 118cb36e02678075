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


# A booking's payments are written by bookings/records.py alone (docs/architecture.md, "The data"):
# its state through the payment's compare-and-set, the checkout attached, the Connect split grown;
# the statements it sends are built in bookings/record_statements.py.
PAYMENT_WRITERS = (SRC / "bookings" / "records.py", SRC / "bookings" / "record_statements.py")
_WRITES = ("insert", "update", "delete")
_SQL_WRITES = ("insert into payments", "update payments", "delete from payments")


def _payment_writes(path: Path) -> list[str]:
    """`what@line` for each write of the payments table in `path`: a Core or ORM INSERT, UPDATE
    or DELETE of `Payment` (or a name bound to its table), `Payment(...)` made (to be added), or
    SQL text that writes it."""
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    tables = {"Payment"}
    for node in ast.walk(tree):  # names bound to the payments table: X = cast(sa.Table, Payment.__table__)
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            if "Payment.__table__" in (ast.get_source_segment(source, node.value) or ""):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                tables |= {t.id for t in targets if isinstance(t, ast.Name)}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        first = node.args[0] if node.args else None
        if func in _WRITES and isinstance(first, ast.Name) and first.id in tables:
            found.append((node.lineno, f"{func}({first.id})"))
        elif func == "Payment":
            found.append((node.lineno, "Payment()"))
        elif func in ("text", "exec_driver_sql") and isinstance(first, ast.Constant) and isinstance(first.value, str):
            if any(sql in " ".join(first.value.lower().split()) for sql in _SQL_WRITES):
                found.append((node.lineno, func))
    return [f"{what}@{line}" for line, what in sorted(found)]


def test_only_the_records_module_writes_payments():
    offenders = [
        f"{path.relative_to(SRC.parent)}: {where}"
        for path in sorted(SRC.rglob("*.py"))
        if path not in PAYMENT_WRITERS and "migrations" not in path.parts
        for where in _payment_writes(path)
    ]
    assert offenders == []
    assert all(_payment_writes(path) for path in PAYMENT_WRITERS), "the check no longer sees the records' writes"


def test_only_the_records_module_sends_the_records_statements():
    importers = [
        str(path.relative_to(SRC.parent))
        for path in sorted(SRC.rglob("*.py"))
        if path not in PAYMENT_WRITERS and "record_statements" in path.read_text()
    ]
    assert importers == []


def test_the_payment_writes_check_finds_each_kind_of_write(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import sqlalchemy as sa\n"
        "from tutorbook.bookings.models import Payment\n"
        "T = Payment.__table__\n"
        "def f(s, pid):\n"
        "    s.execute(sa.update(Payment).where(Payment.id == pid).values(amount=1))\n"
        "    s.execute(sa.insert(T).values(id=pid))\n"
        "    s.add(Payment(id=pid))\n"
        "    s.execute(sa.text('UPDATE  payments SET amount = 1'))\n"
        "    s.execute(sa.select(Payment))\n"
    )
    assert _payment_writes(module) == ["update(Payment)@5", "insert(T)@6", "Payment()@7", "text@8"]
