"""Issue #31: tracing is off unless configured, and off it costs nothing: OpenTelemetry's SDK and
instrumentations are not imported (FastAPI itself loads the bare API), nothing is patched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import tutorbook.asgi
from tutorbook import tracing
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.instrumentation",
                                                          "opentelemetry.exporter", "tutorbook.telemetry")))
print(json.dumps({"loaded": loaded, "enabled": tracing.enabled()}))
"""


def _probe(tmp_path, **env) -> dict:
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TUTORBOOK_", "OTEL_"))},
        "TUTORBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}",
        "TUTORBOOK_VAR_DIR": str(tmp_path / "var"),
        "TUTORBOOK_LOG_LEVEL": "WARNING",
        **env,
    }
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_with_tracing_off_the_web_process_imports_nothing_of_opentelemetrys_sdk(tmp_path):
    assert _probe(tmp_path) == {"loaded": [], "enabled": False}


@pytest.mark.parametrize("mode", ["console", "otlp"])
def test_with_tracing_on_the_web_process_is_instrumented(tmp_path, mode):
    probe = _probe(tmp_path, TUTORBOOK_TRACING=mode, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert probe["enabled"] is True
    assert "tutorbook.telemetry" in probe["loaded"]
    assert "opentelemetry.instrumentation.fastapi" in probe["loaded"]
