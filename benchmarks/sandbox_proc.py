"""Run the Stripe sandbox as its own process for the benchmarks.

Like ``tutorbook stripe-sandbox`` but without uvicorn's per-request access log (the sandbox
shares the machine's two cores with the app under test, and real Stripe costs us no CPU).

    .venv/bin/python benchmarks/sandbox_proc.py --port 12111 --db /tmp/sb.db \
        --webhook-url http://127.0.0.1:8000/api/StripeWebhook/webhook --webhook-secret whsec_x
"""

from __future__ import annotations

import argparse

import uvicorn

from stripe_sandbox.app import create_app
from stripe_sandbox.config import SandboxConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True, help="the sandbox's SQLite file")
    ap.add_argument("--webhook-url", default=None)
    ap.add_argument("--webhook-secret", required=True)
    ap.add_argument("--no-webhooks", action="store_true", help="do not deliver events")
    args = ap.parse_args()
    config = SandboxConfig(
        db_path=args.db,
        public_url=f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        deliver_webhooks=not args.no_webhooks,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
