"""Probe: what one Stripe call costs the *app's* process, by HTTP client setup and concurrency.

Not a goal benchmark: evidence for docs/PERFORMANCE.md. It drives the same SDK call the app
makes (`StripeGateway.create_checkout`, through `stripe.StripeClient` + `stripe.HTTPXClient`)
against the sandbox (its own process) and reads this process's CPU time per call.

Variants:
  app        the gateway exactly as the app builds it: at most stripe_max_concurrent_calls (24)
             calls in flight, over a pool keeping that many connections
  limit N    the same with N instead of 24
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

from tutorbook.config import Settings  # noqa: E402
from tutorbook.payments.gateway import StripeGateway  # noqa: E402


def gateway(sandbox_url: str, variant: str) -> StripeGateway:
    """The app's gateway, with the bound on calls in flight of the variant."""
    settings = Settings(sandbox_url=sandbox_url, stripe_webhook_secret=h.WEBHOOK_SECRET, jwt_secret="x" * 40)
    if variant == "httpx defaults":
        gw = StripeGateway(settings.model_copy(update={"stripe_max_concurrent_calls": 100_000}))
        gw.client._requestor._client._client_async = httpx.AsyncClient()  # the SDK's own default pool
        return gw
    if variant != "app":
        settings = settings.model_copy(update={"stripe_max_concurrent_calls": int(variant.split()[1])})
    return StripeGateway(settings)


async def drive(gw: StripeGateway, concurrency: int, seconds: float) -> tuple[int, float, float, int]:
    """(calls, wall s, CPU s of this process, TCP connections opened) for a closed loop."""
    opened = 0
    pool = gw.client._requestor._client._client_async._transport._pool
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
    return calls, time.perf_counter() - w0, time.process_time() - c0, opened


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
            for variant in ("httpx defaults", "limit 8", "limit 16", "app"):
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
