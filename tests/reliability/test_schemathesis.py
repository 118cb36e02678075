"""schemathesis against /openapi.json, as a parent and as a teacher, on SQLite and PostgreSQL
(NUL bytes included in the generated strings): no server errors and no response that breaks
the documented schema (status codes, content types, bodies, headers). Each run prints how many
requests it sent by status class (`pytest -s`); docs/RELIABILITY.md quotes them.

The checks that compare business validation with the schema (`positive_data_acceptance`,
`negative_data_rejection`) are left out on purpose: a schema-valid booking of a past slot or a
slot outside the teacher's hours is rightly refused (422); see docs/RELIABILITY.md.
"""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests import factories as f
from tests.support.servers import http_client

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
EXAMPLES = int(os.environ.get("TUTORBOOK_SCHEMATHESIS_EXAMPLES", "200" if os.environ.get("TUTORBOOK_HEAVY") else "25"))


@pytest.fixture(params=["Parent", "Teacher"])
def token(request, api):
    with http_client(base_url=api.state.base_url, timeout=30) as c:
        user = f.teacher(c) if request.param == "Teacher" else f.parent(c)
    return user["token"]


def run_schemathesis(api, tmp_path, label: str, *args: str) -> None:
    """Run schemathesis against the live app, print how many requests it sent by status class
    (from its HAR report), and fail on a non-zero exit or any 5xx."""
    exe = Path(sys.executable).with_name("schemathesis")
    har = tmp_path / "requests.har"
    cmd = [
        str(exe),
        "run",
        f"{api.state.base_url}/openapi.json",
        "-n",
        str(EXAMPLES),
        "--checks",
        CHECKS,
        "--generation-allow-x00",
        "true",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--no-color",
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    statuses = Counter(f"{e['response']['status'] // 100}xx" for e in json.loads(har.read_text())["log"]["entries"])
    database = api.state.db.url.split(":")[0].split("+")[0]
    total, by_class = sum(statuses.values()), dict(sorted(statuses.items()))
    print(f"\nschemathesis {label} on {database}: {total} requests, {by_class}, {statuses['5xx']} 5xx")
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Server error" not in result.stdout
    assert total > 0 and statuses["5xx"] == 0


def test_the_api_holds_to_its_openapi_document(api, token, tmp_path, request):
    # Login is excluded only so its throttle (429 after 5 failures) does not lock the other phases out;
    # it is fuzzed on its own below.
    run_schemathesis(
        api,
        tmp_path,
        f"as {request.node.callspec.params['token']}",
        "-H",
        f"Authorization: Bearer {token}",
        "--seed",
        os.environ.get("TUTORBOOK_SCHEMATHESIS_SEED", "20261128"),
        "--exclude-path",
        "/api/Auth/login",
    )


def test_login_holds_to_its_schema(api, tmp_path):
    run_schemathesis(api, tmp_path, "login", "--include-path", "/api/Auth/login", "--seed", "20261128")
