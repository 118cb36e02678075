import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tutorbook
from tutorbook.meetings import JitsiProvider, provider_from_config

SRC = str(Path(tutorbook.__file__).resolve().parents[1])


def test_with_no_configuration_the_provider_is_jitsi_on_meet_jit_si():
    provider = provider_from_config()
    assert isinstance(provider, JitsiProvider)
    assert provider.base_url == "https://meet.jit.si"


def test_a_self_hosted_jitsi_is_configurable():
    provider = provider_from_config(jitsi_base_url="https://jitsi.school.org")
    assert provider.base_url == "https://jitsi.school.org"


def test_google_is_built_from_its_options():
    from tutorbook.meetings.google import GoogleMeetProvider

    provider = provider_from_config(
        provider="google",
        google={"service_account_file": "/secrets/sa.json", "impersonate": "bookings@school.org"},
    )
    assert isinstance(provider, GoogleMeetProvider)
    assert provider.impersonate == "bookings@school.org"


def test_google_without_options_is_refused():
    with pytest.raises(ValueError):
        provider_from_config(provider="google")


def test_an_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="zoom"):
        provider_from_config(provider="zoom")


def test_the_default_install_never_imports_the_google_client():
    code = """
import json, sys
from datetime import UTC, datetime
import tutorbook.meetings
from tutorbook.meetings import MeetingRequest, policy, provider_from_config
now = datetime(2030, 1, 1, tzinfo=UTC)
request = MeetingRequest("bk_1", "t@school.org", None, "x", now, now, "UTC")
provider = provider_from_config()
policy.create_link(primary=provider, fallback=provider, request=request,
                   attempts=0, max_failures=3, now=now)
print(json.dumps(sorted(sys.modules)))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    modules = json.loads(result.stdout)
    assert "tutorbook.meetings.google" not in modules
    loaded_google = [m for m in modules if m.split(".")[0] in ("google", "googleapiclient")]
    assert loaded_google == []
    assert "httplib2" not in modules
