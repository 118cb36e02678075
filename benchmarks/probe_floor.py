"""The per-request floor (issue #33): Python calls (cProfile) and CPU per request of direct ASGI
calls (no server, no client: the app called as uvicorn would call it, in this process), for

  bare-hello   a bare FastAPI() app, one `async def` route returning a dict
  x-first      our app with an async no-op route added first of all its routes
  x-last       the same route added last (what trying every route before it costs)
  teachers     GET /api/Teachers (the whole list)
  health       GET /health

CPU per request is this thread's (noisy on a shared machine); the calls are not.

    PYTHONPATH=$PWD/src:$PWD .venv/bin/python benchmarks/probe_floor.py [-n 2000]

PostgreSQL: a database of its own (`probe_counts_<pid>`), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

sys.path.insert(0, str(Path(__file__).parent))
from probe_statement_counts import database, drop  # noqa: E402

from tutorbook.app import create_app  # noqa: E402
from tutorbook.config import Settings  # noqa: E402
from tutorbook.db import Database  # noqa: E402
from tutorbook.migrate import upgrade  # noqa: E402


def scope(path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def call(app: Any, sc: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(sc), receive, send)
    return sent


async def measure(name: str, app: Any, sc: dict[str, Any], n: int) -> None:
    for _ in range(50):  # warm: compiled statements, caches
        sent = await call(app, sc)
    assert sent[0]["status"] == 200, sent
    started = time.thread_time()
    for _ in range(n):
        await call(app, sc)
    cpu = (time.thread_time() - started) / n * 1e6
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n // 4):
        await call(app, sc)
    profile.disable()
    calls = pstats.Stats(profile).total_calls / (n // 4)  # type: ignore[attr-defined]
    print(f"{name:12s} {calls:8,.0f} Python calls/request {cpu:8.1f} us CPU/request", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="requests per row")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="probe_floor_"))
    url, pg_name = database("postgresql", tmp)
    try:
        upgrade(url)
        settings = Settings(database_url=url, var_dir=tmp / "var", jwt_secret="probe-secret-" + "x" * 32,
                            jobs_enabled=False, log_level="WARNING", log_json=True).resolved()  # fmt: skip
        ours = create_app(settings, db=Database(url, pool_size=10))

        async def noop() -> Response:
            return Response(b'{"success":true}', media_type="application/json")

        ours.add_api_route("/__first", noop, methods=["GET"])
        ours.router.routes.insert(0, ours.router.routes.pop())
        ours.add_api_route("/__last", noop, methods=["GET"])
        bare = FastAPI()

        @bare.get("/hello")
        async def hello() -> dict[str, object]:
            return {"success": True, "message": "OK", "data": "x"}

        async def run() -> None:
            await measure("bare-hello", bare, scope("/hello"), args.n)
            await measure("x-first", ours, scope("/__first"), args.n)
            await measure("x-last", ours, scope("/__last"), args.n)
            await measure("teachers", ours, scope("/api/Teachers"), args.n)
            await measure("health", ours, scope("/health"), args.n)
            await ours.state.db.dispose_async()

        asyncio.run(run())
    finally:
        drop(pg_name)


if __name__ == "__main__":
    main()
