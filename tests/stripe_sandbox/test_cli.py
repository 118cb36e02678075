"""The installed `stripe-sandbox` command: a sandbox of its own, configured by options only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import stripe

from tests.support.servers import free_port, wait_for

from .helpers import http, make_client, session_params

COMMAND = Path(sys.executable).with_name("stripe-sandbox")


def _answers(url: str) -> bool:
    try:
        return http.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def command_sandbox(tmp_path):
    """`stripe-sandbox` started as its own process on a free port; its base URL."""
    port = free_port()
    log = tmp_path / "sandbox.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(COMMAND),
                "--port",
                str(port),
                "--db",
                str(tmp_path / "state" / "sandbox.sqlite3"),
                "--api-key",
                "sk_test_from_the_command",
                "--substitute-cancel-url",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: proc.poll() is not None or _answers(base_url + "/_sandbox/clock"),
            timeout=30,
            message="the stripe-sandbox command to answer",
        )
        assert proc.poll() is None, log.read_text()
        yield base_url
    finally:
        proc.terminate()
        proc.wait(15)


def test_the_command_serves_the_api_and_the_hosted_page_with_its_options(command_sandbox, tmp_path):
    client = make_client(command_sandbox, api_key="sk_test_from_the_command")
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.url.startswith(command_sandbox + "/")
    page = http.get(session.url)
    assert page.status_code == 200 and "Maths lesson with Ada" in page.text  # the packaged template
    assert f"session_id={session.id}&amp;booking_id=42" in page.text  # --substitute-cancel-url
    assert (tmp_path / "state" / "sandbox.sqlite3").exists()
    with pytest.raises(stripe.AuthenticationError):
        make_client(command_sandbox).v1.checkout.sessions.create(params=session_params())
