"""The `stripe-sandbox` command: run the sandbox on its own, configured by options only.

`tutorbook stripe-sandbox` runs the same server with Tutorbook's settings (its webhook URL and
secret); this command knows nothing of Tutorbook.
"""

from __future__ import annotations

import typer

from .config import SandboxConfig
from .server import run

app = typer.Typer(help="A Stripe-compatible sandbox for development, demos and tests.", add_completion=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(12111, help="Port to listen on"),
    db: str = typer.Option(SandboxConfig.db_path, help="The sandbox's SQLite file (created if missing)"),
    api_key: str = typer.Option(SandboxConfig.api_key, help="The secret key clients must send"),
    public_url: str = typer.Option(None, help="Base URL browsers reach the sandbox at (default: http://HOST:PORT)"),
    webhook_url: str = typer.Option(None, help="Where to deliver signed events (default: no delivery)"),
    webhook_secret: str = typer.Option(SandboxConfig.webhook_secret, help="The whsec_… the events are signed with"),
    connect_webhook_url: str = typer.Option(
        None, help="Where to deliver the events of connected accounts (a Connect endpoint; default: none)"
    ),
    connect_webhook_secret: str = typer.Option(
        SandboxConfig.connect_webhook_secret, help="The whsec_… the Connect endpoint's events are signed with"
    ),
    latency_ms: int = typer.Option(0, help="Added to every /v1 call, to simulate a distant Stripe"),
    substitute_cancel_url: bool = typer.Option(False, help="Fill {CHECKOUT_SESSION_ID} in cancel_url too"),
):
    """Serve the Stripe API subset, the hosted checkout page and the /_sandbox controls."""
    config = SandboxConfig(
        api_key=api_key,
        db_path=db,
        public_url=public_url,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        connect_webhook_url=connect_webhook_url,
        connect_webhook_secret=connect_webhook_secret,
        latency_ms=latency_ms,
        substitute_cancel_url=substitute_cancel_url,
    )
    run(config, host=host, port=port)


if __name__ == "__main__":
    app()
