"""/openapi.json from a fresh app: the shared live app may carry routes tests added to it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings
from tests.support.servers import ThreadedServer, http_get
from tutorbook.app import create_app


def served_openapi(var_dir: Path) -> str:
    """The document as a new app serves it over HTTP (it does not depend on the database)."""
    server = ThreadedServer(create_app(make_settings(f"sqlite:///{var_dir / 'unused.db'}", var_dir))).start()
    try:
        r = http_get(f"{server.base_url}/openapi.json")
    finally:
        server.stop()
    r.raise_for_status()
    return r.text
