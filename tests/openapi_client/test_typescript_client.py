"""The frontend's client, generated from /openapi.json with openapi-typescript, type-checks the
frontend's own code (the seed report's status map and cancel-payment call, and paging My Bookings and
the teacher's schedule by number or cursor, in frontend/).

The npm packages come from package-lock.json, installed by `npm ci` into node_modules (git-ignored)
the first time and whenever the lock file changes. Without node or the npm registry this test fails;
it never skips.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.openapi import served_openapi

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node_modules"
BIN = NODE_MODULES / ".bin"


def _run(cmd: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def npm_packages() -> Path:
    """node_modules as package-lock.json says, from `npm ci` only when missing or out of date."""
    lock_hash = hashlib.sha1((HERE / "package-lock.json").read_bytes()).hexdigest()[:12]
    stamp = NODE_MODULES / f".installed-{lock_hash}"
    if stamp.exists():
        return BIN
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm (node 20) is required for the OpenAPI client test and is not on PATH")
    result = _run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], timeout=600)
    if result.returncode != 0:
        pytest.fail(f"npm ci failed (is the npm registry reachable?):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    for old in NODE_MODULES.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return BIN


@pytest.fixture(scope="module")
def openapi_json(tmp_path_factory) -> Path:
    """/openapi.json as the app serves it, in a file."""
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_text(served_openapi(tmp_path_factory.mktemp("openapi-var")))
    return path


def test_the_frontends_status_map_cancel_payment_and_paging_type_check_against_the_generated_client(
    npm_packages, openapi_json, tmp_path
):
    # Generated outside the source tree; the fixture tsconfig is extended to find it as `tutorbook-api`.
    out = tmp_path
    generated = {"tutorbook-api": [], "tutorbook-api-enums": ["--enum"]}
    for name, flags in generated.items():
        result = _run(
            [str(npm_packages / "openapi-typescript"), str(openapi_json), *flags, "-o", str(out / f"{name}.ts")],
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    tsconfig = {
        "extends": str(HERE / "tsconfig.json"),
        "compilerOptions": {"paths": {name: [str(out / f"{name}.ts")] for name in generated}},
    }
    (out / "tsconfig.json").write_text(json.dumps(tsconfig))

    result = _run([str(npm_packages / "tsc"), "-p", str(out / "tsconfig.json"), "--pretty", "false"], timeout=300)

    assert result.returncode == 0, "tsc rejected the frontend code against the generated types:\n" + result.stdout
