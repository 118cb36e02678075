"""Probe: what one Stripe call costs the *app's* process, by HTTP client setup and concurrency.

Not a goal benchmark: evidence for docs/PERFORMANCE.md. It drives the same SDK call the app
makes (`StripeGateway.create_checkout`, through `stripe.StripeClient`) against the sandbox (its
own process) and reads this process's CPU time per call.

Variants:
  app        the gateway exactly as the app builds it: at most stripe_max_concurrent_calls (24)
             calls in flight (more as the measured rate and latency ask), over the SDK's aiohttp
             client (`stripe.AIOHTTPClient`) keeping the bound's ceiling of connections
  limit N    the same with N instead of 24
  httpx pooled  the async calls over httpx instead, with a pool keeping the bound's ceiling of
             connections: the gateway from 2026-11-29 until 2026-11-30
  httpx defaults  the gateway as it was before 2026-11-29: no bound on calls in flight, the SDK's
             httpx.AsyncClient with httpx's defaults (max_connections=100, max_keepalive=20)

    .venv/bin/python benchmarks/probe_stripe_client.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import httpx  # noqa: E402
import stripe  # noqa: E402

from tutorbook.config import Settings  # noqa: E402
from tutorbook.payments.gateway import StripeGateway  # noqa: E402


def gateway(sandbox_url: str, variant: str) -> StripeGateway:
    """The app's gateway, with the bound on calls in flight and the async HTTP client of the variant."""
    settings = Settings(sandbox_url=sandbox_url, stripe_webhook_secret=h.WEBHOOK_SECRET, jwt_secret="x" * 40)
    if variant == "httpx defaults":
        gw = StripeGateway(settings.model_copy(update={"stripe_max_concurrent_calls": 100_000}))
        _over_httpx(gw, httpx.AsyncClient())  # the SDK's own default pool
        return gw
    if variant == "httpx pooled":
        gw = StripeGateway(settings)
        keep = gw.bound.ceiling
        _over_httpx(gw, httpx.AsyncClient(limits=httpx.Limits(max_connections=keep, max_keepalive_connections=keep)))
        return gw
    if variant != "app":
        settings = settings.model_copy(update={"stripe_max_concurrent_calls": int(variant.split()[1])})
    return StripeGateway(settings)


def _over_httpx(gw: StripeGateway, client: httpx.AsyncClient) -> None:
    """The gateway's async calls over `client` (the SDK's httpx client) instead of aiohttp."""
    over = stripe.HTTPXClient(timeout=gw.timeout)
    over._client_async = client
    gw.http._async_client = lambda: over
    gw.probe_pool = client._transport._pool


async def drive(gw: StripeGateway, concurrency: int, seconds: float) -> tuple[int, float, float, int]:
    """(calls, wall s, CPU s of this process, TCP connections opened) for a closed loop."""
    opened = 0
    pool = getattr(gw, "probe_pool", None)
    if pool is None:  # aiohttp: the connector of this loop's session
        pool = gw.http._async_client()._user_connector
        original = pool._create_connection

        async def counting(*args, **kwargs):
            nonlocal opened
            opened += 1
            return await original(*args, **kwargs)

        pool._create_connection = counting
    else:
        original = pool.create_connection

        def counting(origin):
            nonlocal opened
            opened += 1
            return original(origin)

        pool.create_connection = counting
    expires = datetime.now(UTC) + timedelta(minutes=31)
    stop = time.perf_counter() + seconds
    calls = 0

    async def worker() -> None:
        nonlocal calls
        while time.perf_counter() < stop:
            await gw.create_checkout(
                booking_id=str(uuid.uuid4()), amount=3000, currency="usd", product_name="Mathematics with T",
                customer_email="p@example.com", success_url="http://x/s?session_id={CHECKOUT_SESSION_ID}",
                cancel_url="http://x/c?session_id={CHECKOUT_SESSION_ID}", expires_at=expires)
            calls += 1

    await worker_warmup(gw)
    opened = 0
    c0, w0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    await gw.aclose()
    return calls, wall, cpu, opened


async def worker_warmup(gw: StripeGateway) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=31)
    for _ in range(5):
        await gw.create_checkout(
            booking_id=str(uuid.uuid4()), amount=3000, currency="usd", product_name="warm-up",
            customer_email=None, success_url="http://x/s", cancel_url="http://x/c", expires_at=expires)


def main() -> None:
    ap = h.parser(__doc__)
    args = ap.parse_args()
    seconds = 3.0 if args.quick else 8.0
    rows = []
    with h.Servers("postgres", sandbox=True, app=False) as srv:
        for latency in (0, 300):
            srv.sandbox_config(latency_ms=latency)
            for variant in ("httpx defaults", "httpx pooled", "limit 8", "limit 16", "app"):
                for conc in (1, 20, 100):
                    gw = gateway(srv.sandbox_url, variant)
                    calls, wall, cpu, opened = asyncio.run(drive(gw, conc, seconds))
                    row = [f"+{latency} ms", variant, conc, f"{calls / wall:,.0f}", f"{1000 * cpu / calls:.2f}",
                           f"{opened / calls:.2f}"]
                    rows.append(row)
                    print("  ".join(str(c) for c in row), flush=True)
    print()
    print(h.md_table(["Stripe latency", "client", "concurrency", "calls/s", "client CPU ms / call",
                      "new TCP connections / call"], rows))


if __name__ == "__main__":
    main()
