#!/usr/bin/env python3
"""Mutation testing of the money and status modules with cosmic-ray (scripts/mutation.toml).

    scripts/mutation.py                       every module, every mutant (make mutation)
    scripts/mutation.py policy lifecycle      those modules
    scripts/mutation.py --sample 25 --check   25 mutants a module, drawn from its code and its tests
    scripts/mutation.py --ci --check          each module's `ci_sample` mutants (CI; .ci/run)
    scripts/mutation.py --changed-since main  only the modules changed since `main`
    scripts/mutation.py --recheck run.json    the current tests against each survivor a run's --json kept

Each module is mutated in a copy of src/ in a temporary folder (the work tree is never touched:
PYTHONPATH puts the copy before the editable install, for the tests' subprocesses too), one mutant
at a time, running only the module's fast tests (on its `databases`; then, for a mutant they let
through, its `tests_postgresql` on PostgreSQL: TUTORBOOK_TEST_POSTGRES_URL, by default the local
server, each session making and dropping its own database). The score is killed / (killed + survived)
over the mutants not listed as equivalent. `--check` exits 1 when a full run is under the target, or when a
sample (`--sample`, `--ci`), which never draws a listed `known_survivor`, lets any mutant survive:
every survivor it finds is new. Each mutant's pytest runs in a child forked from a process that
imported pytest and the third-party packages once (`Zygote`; `--no-zygote` to start a new Python
each time). One module at a time, under `nice`: the machine is shared.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "scripts" / "mutation.toml"
PYTHON = ROOT / ".venv" / "bin" / "python"
BIN = ROOT / ".venv" / "bin"


# The PostgreSQL server the mutants' sessions make their databases on (the tests' own default too).
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# This run's tag, in the name of every PostgreSQL database its sessions make (tests/conftest.py's
# RUN_ID starts with TUTORBOOK_TEST_RUN_TAG): a session cosmic-ray's timeout killed never dropped
# its own, and the run drops those by the tag (`drop_left_databases`), never another run's.
RUN_TAG = f"mut{secrets.token_hex(3)}_"


def load() -> dict:
    return tomllib.loads(CONFIG.read_text())


def sessions(module: dict[str, Any]) -> list[tuple[list[str], str]]:
    """A mutant's test sessions, run in this order, each stopping the mutant's run when it fails:
    `tests` on the module's `databases`, then `tests_postgresql` (if any) on PostgreSQL alone, for a
    path only PostgreSQL takes (the rest of a module's tests stay on SQLite, cheaper)."""
    out = [(list(module["tests"]), str(module.get("databases", "")))]
    if module.get("tests_postgresql"):
        out.append((list(module["tests_postgresql"]), "postgresql"))
    return out


def _all_tests(module: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(t for tests, _ in sessions(module) for t in tests))


def drop_left_databases() -> list[str]:
    """Drop the PostgreSQL databases this run's sessions made and did not drop (a session killed
    by the timeout); the names dropped."""
    import sqlalchemy as sa

    admin = sa.create_engine(os.environ.get("TUTORBOOK_TEST_POSTGRES_URL", PG_URL), isolation_level="AUTOCOMMIT")
    dropped: list[str] = []
    try:
        with admin.connect() as conn:
            names = conn.exec_driver_sql(
                "SELECT datname FROM pg_database WHERE strpos(datname, %(tag)s) > 0", {"tag": f"_{RUN_TAG}"}
            ).scalars()
            for name in list(names):
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
    finally:
        admin.dispose()
    return dropped


# Plugins no mutant's test list uses, left out of each mutant's session: loading them cost about
# 2 s of CPU of the 4.4 s a session took before its first test (hypothesis's plugin and schemathesis
# import hypothesis, 2.5 s of wall time alone under `-X importtime`). A test module that imports
# hypothesis itself (test_ledger_properties) still runs its @given tests without the plugin. The
# unmutated run uses the same command, so a list that needed one of them fails there first ("the
# tests fail without any mutation"), never as mutants wrongly killed.
UNUSED_PLUGINS = ("xdist", "xdist.looponfail", "anyio", "hypothesispytest", "schemathesis")


def _pytest_command(tests: list[str]) -> list[str]:
    plugins = [arg for name in ("cacheprovider", "randomly", *UNUSED_PLUGINS) for arg in ("-p", f"no:{name}")]
    return [str(PYTHON), "-m", "pytest", "-x", "-q", *plugins, *tests]


# A fork server ("zygote") for the mutants' test sessions. Each session used to start a new Python
# that imported pytest and the third-party packages (SQLAlchemy, FastAPI, pydantic, stripe, ...)
# again: about 1.5 s of CPU of the 2.3 s a session took before its first test. The zygote imports
# them once a module, in the mutants' environment (the copy of src/ first on the path), and never
# `tutorbook` or `tests`: those each child imports afresh from disk, so it sees the mutant that
# cosmic-ray just wrote. cosmic-ray's test command is a small client (`--zygote-client`) that passes
# its stdin/stdout/stderr to the zygote, which forks a handler; the handler forks the session (in a
# process group of its own), waits for it and sends back its exit status, which the client exits
# with. When cosmic-ray's timeout kills the client, the handler sees the connection close and kills
# the session's process group, so a mutant that hangs is still a timeout (killed).
ZYGOTE_PROBE = """
import json, sys
import pytest
pytest.main(sys.argv[2:])
skip = ("tutorbook", "tests", "conftest", "__main__", "__mp_main__")
names = [m for m in list(sys.modules) if m.split(".")[0] not in skip]
open(sys.argv[1], "w").write(json.dumps(names))
"""


def _zygote_modules(tests: list[str], env: dict[str, str], into: Path) -> None:
    """Which modules a session imports besides tutorbook and the tests: collect the module's tests
    unmutated (src/ of the work tree) in one process and list its sys.modules."""
    probe_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    args = [*_pytest_command(tests)[3:], "--collect-only"]
    subprocess.run(
        [str(PYTHON), "-c", ZYGOTE_PROBE, str(into), *args], cwd=ROOT, env=probe_env, capture_output=True, check=True
    )


def zygote_serve(path: str, modules_file: str) -> int:
    """The zygote: import the listed modules, then fork a handler for each client until killed."""
    import importlib
    import threading

    for name in json.loads(Path(modules_file).read_text()):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 - a module that imports only in pytest's own way: the child imports it
            continue
    if threading.active_count() != 1:  # a fork would copy a process with threads: not safe
        print(f"mutation zygote: {threading.active_count()} threads after the imports", file=sys.stderr)
        return 1
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server.bind(path)
    server.listen(8)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        while True:
            conn, _ = server.accept()
            if os.fork() == 0:
                server.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                code = 1
                try:  # never back into this loop from a fork
                    code = _zygote_handle(conn)
                finally:
                    os._exit(code)
            conn.close()
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
    finally:  # every handler waited for, so `time` of the run counts the sessions' CPU
        with contextlib.suppress(ChildProcessError):
            while True:
                os.waitpid(-1, 0)


def _zygote_handle(conn: socket.socket) -> int:
    """A handler: run the client's session in a forked child; send its exit status back."""
    import select

    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    request = json.loads(message)
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()  # the client's, as a new process would have it (its session's databases)
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # as `python -m pytest` has it (this script's folder otherwise)
        sys.argv = ["pytest", *request["args"]]
        status = 1
        try:
            import pytest

            status = int(pytest.main(request["args"]))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(child)
    while True:
        ready, _, _ = select.select([pidfd, conn], [], [])
        if pidfd in ready:
            _, wait_status = os.waitpid(child, 0)
            code = os.waitstatus_to_exitcode(wait_status)
            try:
                conn.sendall(str(code).encode())
            except OSError:
                pass
            # The session's own subprocesses, if any outlived it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
            return 0
        if not conn.recv(1):  # the client is gone (cosmic-ray's timeout killed it): end the session
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
            os.waitpid(child, 0)
            return 0


def zygote_client(path: str, args: list[str]) -> int:
    """A mutant's test command: the zygote runs `pytest args` with this process's stdio; its status."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    request = {"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
    answer = b""
    while chunk := client.recv(16):
        answer += chunk
    if not answer:  # the handler died without an answer: never count that as a survivor
        print("mutation zygote: no answer", file=sys.stderr)
        return 3
    code = int(answer)
    return code if code >= 0 else 128 - code  # killed by a signal: nonzero, like a shell


class Zygote:
    """The zygote of one module's mutants; `command(tests)` is the client's test command."""

    def __init__(self, tests: list[str], env: dict[str, str], work: Path) -> None:
        self.socket = work / "zygote.sock"
        modules = work / "zygote-modules.json"
        _zygote_modules(tests, env, modules)
        self.process = subprocess.Popen(
            [str(PYTHON), str(Path(__file__).resolve()), "--zygote-serve", str(self.socket), str(modules)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise SystemExit("mutation zygote: did not start")

    def command(self, tests: list[str]) -> list[str]:
        script = str(Path(__file__).resolve())
        return [str(PYTHON), script, "--zygote-client", str(self.socket), "--", *_pytest_command(tests)[3:]]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _env(databases: str, src: Path | None, template: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if template is not None:  # a migrated SQLite database each test session copies (tests/conftest.py)
        env["TUTORBOOK_TEST_SQLITE_TEMPLATE"] = str(template)
    if src is not None:
        env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if databases:
        env["TUTORBOOK_TEST_DATABASES"] = databases
    if "postgresql" in databases:
        env.setdefault("TUTORBOOK_TEST_POSTGRES_URL", PG_URL)
        env["TUTORBOOK_TEST_RUN_TAG"] = RUN_TAG
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run_sessions(
    module: dict[str, Any], src: Path | None, template: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The module's test sessions in order (unmutated, or with `src` first on the path); the
    first that fails, else the last."""
    run: subprocess.CompletedProcess[str] | None = None
    for tests, databases in sessions(module):
        env = _env(databases, src, template)
        run = subprocess.run(_pytest_command(tests), cwd=ROOT, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            break
    assert run is not None
    return run


def _line_of(path: Path, line_no: int) -> str:
    lines = path.read_text().splitlines()
    return lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""


def changed_modules(config: dict, since: str) -> list[str]:
    """The modules whose files differ from `since` (committed or not)."""
    out = subprocess.run(
        ["git", "diff", "--name-only", since, "--"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [name for name, m in config["modules"].items() if m["path"] in out]


def run_module(
    name: str,
    config: dict,
    *,
    sample: int | None,
    seed: str,
    verbose: bool,
    use_zygote: bool = True,
    part: tuple[int, int] | None = None,
) -> dict:
    """Mutate one module; its counts, score and survivors."""
    module = config["modules"][name]
    target = config["target"]
    excluded = [re.compile(p) for p in config.get("exclude_operators", [])]
    equivalents = [e for e in config.get("equivalent", []) if e["module"] == name]
    known = [e for e in config.get("known_survivor", []) if e["module"] == name]
    tests = _all_tests(module)
    started = time.monotonic()
    keep = tempfile.TemporaryDirectory(prefix=f"mutation-{name}-db-")
    template = None
    if "sqlite" in module.get("databases", ""):  # migrated once (unmutated), not by every mutant's session
        template = Path(keep.name) / "migrated.db"
        migrate = f"from tutorbook.migrate import upgrade; upgrade('sqlite:///{template}')"
        subprocess.run([str(PYTHON), "-c", migrate], cwd=ROOT, env=_env("", None), check=True, capture_output=True)
    # The module's tests must pass unmutated, and their time bounds each mutant's.
    t0 = time.monotonic()
    base = _run_sessions(module, None, template)
    baseline_s = time.monotonic() - t0
    if base.returncode != 0:
        print(base.stdout[-3000:], base.stderr[-2000:])
        raise SystemExit(f"{name}: the tests fail without any mutation")
    with tempfile.TemporaryDirectory(prefix=f"mutation-{name}-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
        mutants_env = _env(str(module.get("databases", "")), work / "src", template)
        zygote = Zygote(tests, mutants_env, work) if use_zygote else None
        # One command a session, each with its own databases (the zygote's child takes the client's
        # environment), joined by && so that a mutant the first kills never runs the next.
        steps = []
        for session_tests, databases in sessions(module):
            step = zygote.command(session_tests) if zygote else _pytest_command(session_tests)
            step_env = _env(databases, work / "src", template)
            chosen = {k: v for k, v in step_env.items() if mutants_env.get(k) != v}
            steps.append(shlex.join(["env", *(f"{k}={v}" for k, v in chosen.items()), *step]))
        command = "bash -c " + shlex.quote(f"cd {shlex.quote(str(ROOT))} && " + " && ".join(steps))
        cfg = work / "cosmic-ray.toml"
        cfg.write_text(
            "[cosmic-ray]\n"
            f'module-path = "{module["path"]}"\n'
            f"timeout = {max(30.0, baseline_s * 4 + 15):.0f}.0\n"
            "excluded-modules = []\n"
            f"test-command = {json.dumps(command)}\n"
            "[cosmic-ray.distributor]\n"
            'name = "local"\n'
        )
        session = work / "session.sqlite"
        subprocess.run([BIN / "cosmic-ray", "init", cfg, session], cwd=work, check=True, capture_output=True)
        counted, skipped_equivalent, skipped_sample, excluded_n, skipped_known = _select(
            session,
            work=work,
            excluded=excluded,
            equivalents=equivalents,
            known=known,
            sample=sample,
            part=part,
            seed=f"{seed}:{name}",
        )
        try:
            subprocess.run([BIN / "cosmic-ray", "exec", cfg, session], cwd=work, env=mutants_env, check=True)
        finally:
            if zygote:
                zygote.close()
            left = drop_left_databases() if any("postgresql" in d for _, d in sessions(module)) else []
            if left:
                print(f"{name}: dropped {len(left)} PostgreSQL databases a killed session left", flush=True)
        result = _score(session, work=work, known=known)
    keep.cleanup()
    result.update(
        module=name,
        path=module["path"],
        mutants=counted,
        equivalent=skipped_equivalent,
        not_sampled=skipped_sample,
        known_not_drawn=skipped_known,
        excluded_operators=excluded_n,
        target=target,
        seconds=round(time.monotonic() - started),
        baseline_seconds=round(baseline_s, 1),
    )
    if sample is None:  # a full run: the score against the target
        result["ok"] = result["score"] is None or result["score"] >= target
    else:  # a sample draws no known survivor: any survivor is new, a drop in the score
        result["ok"] = result["survived"] == 0
    return result


def _select(
    session: Path,
    *,
    work: Path,
    excluded,
    equivalents,
    known,
    sample: int | None,
    seed: str,
    part: tuple[int, int] | None = None,
):
    """Skip excluded operators, listed equivalents and (with `sample`) the known survivors and all
    but a sample chosen from `seed`; the counts of each. A full run (no `sample`) runs the known
    survivors and counts them, so the full score stays honest; a sample never draws them, so it
    fails only on a survivor nobody listed: a drop in the score."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        items = list(db.pending_work_items)
        keep, equivalent, dropped, known_n = [], 0, 0, 0
        for item in items:
            spec = item.mutations[0]
            if any(p.search(spec.operator_name) for p in excluded):
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="excluded operator"))
                dropped += 1
                continue
            reason = (
                _equivalent(spec, work=work, equivalents=equivalents)
                or _in_annotation(spec, work=work)
                or _star_marker(spec, work=work)
            )
            if reason is not None:
                skip = WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=f"equivalent: {reason}")
                db.set_result(item.job_id, skip)
                equivalent += 1
                continue
            if sample is not None and any(_matches(k, spec, work=work) for k in known):
                skip = WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="known survivor, not drawn")
                db.set_result(item.job_id, skip)
                known_n += 1
                continue
            keep.append(item)
        not_sampled = 0
        if part is not None:  # one of n disjoint parts of a full run, by each mutant's own place
            k, n = part
            mine = [i for i in keep if _part_of(i.mutations[0], n) == k]
            for item in keep:
                if _part_of(item.mutations[0], n) != k:
                    db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="other part"))
                    not_sampled += 1
            keep = mine
        if sample is not None and len(keep) > sample:
            # Each mutant's place in the draw comes from the seed and the mutant alone, so listing one
            # (equivalent, known survivor) swaps that one for the next and leaves the rest drawn.
            chosen = {i.job_id for i in sorted(keep, key=lambda i: _draw_key(seed, i.mutations[0]))[:sample]}
            for item in keep:
                if item.job_id not in chosen:
                    db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="not sampled"))
                    not_sampled += 1
            keep = [i for i in keep if i.job_id in chosen]
    return len(keep), equivalent, not_sampled, dropped, known_n


def _mutant_key(spec: Any) -> str:
    return f"{spec.module_path}:{spec.operator_name}:{spec.occurrence}:{tuple(spec.start_pos)}"


def _draw_key(seed: str, spec: Any) -> str:
    """A mutant's place in a sample's draw (see `_select`)."""
    return hashlib.sha256(f"{seed}|{_mutant_key(spec)}".encode()).hexdigest()


def _part_of(spec: Any, n: int) -> int:
    """Which of n parts a mutant falls in: from its operator, place and occurrence (stable across runs)."""
    return int(hashlib.sha256(_mutant_key(spec).encode()).hexdigest(), 16) % n


def _token(spec, *, work: Path) -> str:
    """The source text a mutation replaces (on one line), e.g. `1` or `>=`."""
    raw = (work / spec.module_path).read_text().splitlines()[spec.start_pos[0] - 1]
    if spec.end_pos[0] != spec.start_pos[0]:
        return raw[spec.start_pos[1] :].strip()
    return raw[spec.start_pos[1] : spec.end_pos[1]].strip()


def _mutated_line(spec, *, work: Path) -> str:
    """The mutant's source line (stripped), as cosmic-ray writes it, e.g. `if days < 29 ...`."""
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    operator = get_operator(spec.operator_name)(**getattr(spec, "operator_args", {}))
    mutated = mutate_code((work / spec.module_path).read_text(), operator, spec.occurrence)
    lines = (mutated or "").splitlines()
    return lines[spec.start_pos[0] - 1].strip() if 0 < spec.start_pos[0] <= len(lines) else ""


def _matches(entry: dict, spec, *, work: Path) -> bool:
    """An `equivalent` or `known_survivor` entry names this mutant: its operator, stripped source
    line and, when given, the replaced text (`token`) and the mutated line (`mutated`, which tells
    `< 30` -> `< 29` from `< 31`, both of the token `30`)."""
    return (
        entry["operator"] == spec.operator_name
        and entry["line"] == _line_of(work / spec.module_path, spec.start_pos[0])
        and entry.get("token", _token(spec, work=work)) == _token(spec, work=work)
        and ("mutated" not in entry or entry["mutated"] == _mutated_line(spec, work=work))
    )


def _equivalent(spec, *, work: Path, equivalents: list[dict]) -> str | None:
    """The reason this mutant is listed as equivalent, or None."""
    for e in equivalents:
        if _matches(e, spec, work=work):
            return e["reason"]
    return None


def _annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's type annotations are: (start, end) as (line, column)."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        notes = []
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            notes.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            notes.append(node.returns)
        for n in notes:
            spans.append(((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)))
    return spans


def _in_annotation(spec, *, work: Path) -> str | None:
    """Equivalent: a mutant inside a type annotation, which `from __future__ import annotations`
    keeps as a string that nothing evaluates (the money modules all import it)."""
    path = work / spec.module_path
    if "from __future__ import annotations" not in path.read_text():
        return None
    start = tuple(spec.start_pos)
    if any(a <= start < b for a, b in _annotation_spans(path)):
        return "inside a type annotation (never evaluated under `from __future__ import annotations`)"
    return None


def _star_marker(spec, *, work: Path) -> str | None:
    """Equivalent: `*` made `/` where it is no multiplication but a signature's keyword-only marker:
    the parameters after it may then also be passed by position, which no call site does (and
    `*args` made `/args` does not compile, so that one is killed, not skipped)."""
    # Only `/` compiles there; `+`, `-`, `//`, `%` are syntax errors, counted as killed.
    if spec.operator_name != "core/ReplaceBinaryOperator_Mul_Div" or _token(spec, work=work) != "*":
        return None
    start = tuple(spec.start_pos)
    for node in ast.walk(ast.parse((work / spec.module_path).read_text())):
        if isinstance(node, ast.BinOp):
            span = ((node.lineno, node.col_offset), (node.end_lineno or node.lineno, node.end_col_offset or 0))
            if span[0] <= start < span[1]:
                return None
    return "the keyword-only marker `*` made `/`: it only lets callers pass by position"


def _score(session: Path, *, work: Path, known: list[dict]) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    killed = survived = incompetent = 0
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.test_outcome == TestOutcome.SURVIVED:
                survived += 1
                spec = item.mutations[0]
                survivors.append(
                    {
                        "operator": spec.operator_name,
                        "line_no": spec.start_pos[0],
                        "line": _line_of(work / spec.module_path, spec.start_pos[0]),
                        "token": _token(spec, work=work),
                        "diff": result.diff,
                        "known": any(_matches(k, spec, work=work) for k in known),
                    }
                )
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                incompetent += 1
            else:
                killed += 1
    # An incompetent mutant (the code no longer imports or runs at all) is one no test lets through.
    caught = killed + incompetent
    total = caught + survived
    return {
        "killed": caught,
        "survived": survived,
        "score": round(100.0 * caught / total, 1) if total else None,
        "survivors": survivors,
    }


def recheck(path: Path, config: dict) -> int:
    """Run each module's current tests against each survivor saved by `--json` (its diff applied to
    a copy of src/): whether new tests kill it, without a whole new run. 1 if any still survives."""
    alive = 0
    for result in json.loads(path.read_text()):
        module = config["modules"][result["module"]]
        listed = [e for e in config.get("equivalent", []) if e["module"] == result["module"]]
        for s in result["survivors"]:
            added = [x[1:].strip() for x in s["diff"].splitlines() if x.startswith("+") and not x.startswith("+++")]
            if any(
                e["operator"] == s["operator"]
                and e["line"] == s["line"]
                and e.get("token", s["token"]) == s["token"]
                and ("mutated" not in e or [e["mutated"]] == added)
                for e in listed
            ):
                print(f"{result['module']}: line {s['line_no']} {s['operator']} [{s['token']}] EQUIVALENT: {s['line']}")
                continue
            with tempfile.TemporaryDirectory(prefix="mutation-recheck-") as tmp:
                shutil.copytree(ROOT / "src", Path(tmp) / "src", ignore=shutil.ignore_patterns("__pycache__"))
                diff = s["diff"].replace("--- mutation diff ---\n", "").rstrip("\n") + "\n"
                patched = subprocess.run(["patch", "-s", "-p1", "-d", tmp], input=diff, text=True, capture_output=True)
                if patched.returncode != 0:  # the code it mutated changed since the run
                    print(f"{result['module']}: line {s['line_no']} {s['operator']} [{s['token']}] GONE: {s['line']}")
                    continue
                run = _run_sessions(module, Path(tmp) / "src")
            killed = run.returncode != 0
            alive += not killed
            verdict = "killed" if killed else "SURVIVES"
            print(f"{result['module']}: line {s['line_no']} {s['operator']} [{s['token']}] {verdict}: {s['line']}")
    return 1 if alive else 0


def content_seed(config: dict[str, Any], name: str) -> str:
    """A sample's default seed: the module's source and its test files' bytes. The same tree draws
    the same mutants wherever it runs (a checkout without git, another commit of the same files), so
    what `--check --ci` passed on a machine is what CI draws; a change to the module or its tests
    draws another sample."""
    module = config["modules"][name]
    digest = hashlib.sha256()
    for rel in [module["path"], *module["tests"], *module.get("tests_postgresql", [])]:
        digest.update(rel.encode() + b"\0")
        digest.update((ROOT / rel).read_bytes())
    return f"content:{digest.hexdigest()[:16]}"


def main(argv: list[str] | None = None) -> int:
    config = load()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"some of: {', '.join(config['modules'])} (default: all)")
    parser.add_argument("--sample", type=int, help="at most this many mutants a module (chosen from --seed)")
    parser.add_argument(
        "--ci", action="store_true", help="without --sample: each module's `ci_sample` (mutation.toml; all if unset)"
    )
    parser.add_argument(
        "--part",
        metavar="K/N",
        help="a full run's part K of N (0 <= K < N, disjoint, stable): N runs side by side make one full run",
    )
    parser.add_argument(
        "--seed",
        help="chooses the sample (default: the module's code and its tests' files, so the same tree draws the same "
        "mutants on any machine, with or without git, and a change to either draws anew)",
    )
    parser.add_argument("--changed-since", metavar="REF", help="only the modules changed since this git ref")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a full run scores under the target or a sample lets any mutant survive",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--recheck", type=Path, metavar="JSON", help="rerun the tests against a run's survivors")
    parser.add_argument(
        "--no-zygote", action="store_true", help="start a new Python for each mutant (no fork server; slower)"
    )
    args = parser.parse_args(argv)
    if args.recheck:
        return recheck(args.recheck, config)
    names = args.modules or list(config["modules"])
    unknown = set(names) - set(config["modules"])
    if unknown:
        parser.error(f"unknown modules: {', '.join(sorted(unknown))}")
    if args.changed_since:
        changed = set(changed_modules(config, args.changed_since))
        names = [n for n in names if n in changed]
    part = None
    if args.part:
        k, n = (int(x) for x in args.part.split("/"))
        if not 0 <= k < n:
            parser.error("--part K/N needs 0 <= K < N")
        part = (k, n)
    results = []
    for name in names:
        seed = args.seed or content_seed(config, name)
        print(f"== mutation: {name} ({config['modules'][name]['path']}; seed {seed})", flush=True)
        sample = args.sample
        if sample is None and args.ci:
            sample = config["modules"][name].get("ci_sample")
        r = run_module(
            name, config, sample=sample, seed=seed, verbose=args.verbose, use_zygote=not args.no_zygote, part=part
        )
        results.append(r)
        score = "n/a" if r["score"] is None else f"{r['score']:.1f}%"
        print(
            f"{name}: {r['killed']} killed, {r['survived']} survived of {r['mutants']} "
            f"({r['equivalent']} equivalent, {r['not_sampled']} not sampled, "
            f"{r['known_not_drawn']} known survivors not drawn, "
            f"{r['excluded_operators']} of excluded operators): score {score}, target {r['target']:.0f}% "
            f"-> {'ok' if r['ok'] else 'FAILED'} ({r['seconds']} s)",
            flush=True,
        )
        for s in r["survivors"]:
            known = " (known survivor, listed)" if s["known"] else ""
            print(f"  survived{known}: line {s['line_no']} {s['operator']} [{s['token']}]: {s['line']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not names:
        print("mutation: no money module to test")
    failed = [r["module"] for r in results if not r["ok"]]
    if failed:
        print(f"mutation: under the {config['target']:.0f}% target, or a new survivor in a sample: {', '.join(failed)}")
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zygote-serve"]:
        sys.exit(zygote_serve(sys.argv[2], sys.argv[3]))
    if sys.argv[1:2] == ["--zygote-client"]:
        sys.exit(zygote_client(sys.argv[2], sys.argv[4:]))
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
