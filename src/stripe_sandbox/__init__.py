"""A Stripe-compatible sandbox server for development, demos and tests.

It answers the official ``stripe`` SDK for the Checkout/Refund/Event subset Tutorbook
uses, serves a hosted card page, delivers signed webhooks and keeps all state in SQLite.
"""

from .app import create_app
from .config import SandboxConfig
from .server import SandboxHandle, run, start_in_thread

__all__ = ["SandboxConfig", "SandboxHandle", "create_app", "run", "start_in_thread"]
