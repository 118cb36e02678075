"""Which Stripe API versions the sandbox answers, and which one events are rendered in.

Known versions: the pinned SDK's ``stripe.api_version`` (the version its parameter types and
objects are generated for, and the one it sends in every request's ``Stripe-Version``), plus
any the sandbox's config adds (``extra_api_versions``, for tests of version handling: those
are answered in the pinned version's shape, as the sandbox knows no other). Stripe refuses a
version it does not know ("Invalid Stripe API version: ...",
https://docs.stripe.com/api/versioning); a request without the header gets the account's
default version, here the pinned one.

Events: "The Stripe API version used to render `data` when the event was created"
(``Event.api_version`` in the SDK, https://docs.stripe.com/api/events/object) and "the API
version that events are rendered as for this webhook endpoint"
(``WebhookEndpoint.api_version``, https://docs.stripe.com/api/webhook_endpoints/object):
an event is rendered in the webhook endpoint's version, never in the version of the request
that caused it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import stripe

from .errors import invalid

if TYPE_CHECKING:
    from .config import SandboxConfig

PINNED_API_VERSION: str = stripe.api_version


def known_api_versions(config: SandboxConfig) -> frozenset[str]:
    """The versions a request may ask for."""
    return frozenset({PINNED_API_VERSION, *config.extra_api_versions})


def check_api_version(header: str | None, config: SandboxConfig) -> str:
    """The version a request is answered in: its ``Stripe-Version``, if known."""
    if header is None or header == "":
        return PINNED_API_VERSION
    if header not in known_api_versions(config):
        raise invalid(f"Invalid Stripe API version: {header}")
    return header


def endpoint_api_version(config: SandboxConfig) -> str:
    """The version the webhook endpoint renders events in (the pinned one unless set)."""
    version = config.webhook_api_version or PINNED_API_VERSION
    if version not in known_api_versions(config):
        raise ValueError(f"webhook_api_version {version!r} is not a known Stripe API version")
    return version
