"""Webhook endpoints, the platform's own account and country specs in the sandbox.

Stripe sends an event to the endpoints that want it (`enabled_events`, or `*`): an event of a
connected account (one with an `account` field: `account.updated`, its payouts) only to
endpoints created with `connect=true`, any other only to the platform's (`connect=false`), each
signed with that endpoint's own secret (docs.stripe.com/connect/webhooks). The object does not
show `connect`; a Connect endpoint's `application` is the platform's Connect application ("The
ID of the associated Connect application", the pinned SDK), a platform endpoint's is null.

Besides the endpoints made with `POST /v1/webhook_endpoints`, the sandbox's configuration names
two (`webhook_url`/`webhook_secret` for the platform, `connect_webhook_url`/
`connect_webhook_secret` for Connect): they are listed like the others, with fixed ids, and
follow the configuration when it changes at runtime.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from . import connect_objects as co
from . import objects
from .currencies import PRESENTMENT
from .errors import ApiError, invalid, no_such
from .params import check_known, get_bool, get_int, get_list, get_metadata, get_str

_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")

if TYPE_CHECKING:
    from .config import SandboxConfig
    from .service import ApiCall

PLATFORM_ENDPOINT = "we_sandboxPlatformEndpoint"
CONNECT_ENDPOINT = "we_sandboxConnectEndpoint"
PLATFORM_ACCOUNT = "acct_sandboxPlatform0"
ENDPOINT = "webhook_endpoint"
_EVENT_TYPE = re.compile(r"\*|[a-z_]+(\.[a-z_]+)+")

# Countries in one region for destination charges (docs.stripe.com/connect/destination-charges:
# the platform and the connected account must be in the same region): the EEA with the UK and
# Switzerland; every other country on its own.
EUROPE = sorted(
    """AT BE BG CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT LI LT LU LV MT NL NO PL PT RO SE SI SK""".split()
)
DEFAULT_CURRENCY = {"US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "JP": "jpy", "CH": "chf", "NZ": "nzd",
                    "SG": "sgd", "HK": "hkd", "IN": "inr", "MX": "mxn", "BR": "brl", "DK": "dkk", "SE": "sek",
                    "NO": "nok", "PL": "pln", "CZ": "czk", "HU": "huf", "RO": "ron", "AE": "aed", "MY": "myr",
                    "TH": "thb"}  # fmt: skip


def _stored_endpoint(obj: dict[str, Any]) -> tuple[str, str, bool] | None:
    if obj.get("status") != "enabled":
        return None
    return obj["url"], obj["_secret"], bool(obj["_connect"])


class EndpointOps:
    """The webhook endpoint, account and country spec part of :class:`stripe_sandbox.service.Sandbox`."""

    # provided by Sandbox
    store: Any
    config: SandboxConfig

    def now(self) -> int: ...  # pragma: no cover

    def _render(self, obj: dict[str, Any], call: ApiCall, prefix: str = "") -> dict[str, Any]: ...  # pragma: no cover

    # -- which endpoints get an event ------------------------------------------------------

    def _configured(self) -> list[dict[str, Any]]:
        """The endpoints the configuration names (webhook_url, connect_webhook_url)."""
        config, out = self.config, []
        for endpoint_id, url, secret, connect in (
            (PLATFORM_ENDPOINT, config.webhook_url, config.webhook_secret, False),
            (CONNECT_ENDPOINT, config.connect_webhook_url, config.connect_webhook_secret, True),
        ):
            if url:
                version = objects.DEFAULT_API_VERSION
                out.append(_endpoint(endpoint_id, url=url, events=["*"], connect=connect, version=version, now=0) | {
                    "_secret": secret
                })  # fmt: skip
        return out

    def _endpoints(self) -> list[dict[str, Any]]:
        return self._configured() + [self.store.get(i, ENDPOINT) for i in self.store.ids_where(ENDPOINT, [])]

    def targets(self, event: dict[str, Any]) -> list[str]:
        """The ids of the enabled endpoints this event goes to (none while delivery is off)."""
        if not self.config.deliver_webhooks:
            return []
        connect = bool(event.get("account"))
        return [
            e["id"]
            for e in self._endpoints()
            if e["status"] == "enabled"
            and bool(e["_connect"]) == connect
            and ("*" in e["enabled_events"] or event["type"] in e["enabled_events"])
        ]

    def endpoint_target(self, endpoint_id: str) -> tuple[str, str] | None:
        """Where to send, and the secret to sign with, for an endpoint; None when it is gone or
        disabled (its deliveries then wait)."""
        for e in self._configured():
            if e["id"] == endpoint_id:
                return e["url"], e["_secret"]
        found = self.store.get(endpoint_id, ENDPOINT)
        target = _stored_endpoint(found) if found else None
        return None if target is None else (target[0], target[1])

    def endpoint_version(self, endpoint_id: str) -> str | None:
        """The API version an endpoint was created with (None: the account's default)."""
        found = self.store.get(endpoint_id, ENDPOINT)
        return found.get("api_version") if found else None

    # -- the API -----------------------------------------------------------------------------

    def create_webhook_endpoint(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/webhook_endpoints: the answer carries the endpoint's `secret`, once."""
        params = call.params
        check_known(params, {"url", "enabled_events", "connect", "api_version", "description", "metadata", "expand"})
        url = _url(get_str(params, "url", required=True, max_len=5000) or "")
        events = _events(params)
        version = get_str(params, "api_version")
        # Any version Stripe has published may be chosen here (older ones included: the sandbox
        # knows only the pinned one's shapes, so its deliveries carry the label in that shape).
        if version is not None and not _VERSION.fullmatch(version):
            raise invalid(f"Invalid api_version: {version}", "api_version")
        endpoint = _endpoint(
            objects.new_id("we_"),
            url=url,
            events=events,
            connect=bool(get_bool(params, "connect")),
            version=version or objects.DEFAULT_API_VERSION,
            now=self.now(),
        )
        endpoint.update(
            description=get_str(params, "description", max_len=5000),
            metadata=get_metadata(params),
            _secret="whsec_" + secrets.token_urlsafe(24),
        )
        self.store.insert(endpoint)
        return self._render(endpoint, call) | {"secret": endpoint["_secret"]}

    def list_webhook_endpoints(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/webhook_endpoints (the configured ones first, then the newest)."""
        check_known(call.params, {"limit", "starting_after", "ending_before", "expand"})
        limit = get_int(call.params, "limit", minimum=1, maximum=100) or 10
        stored = [self.store.get(i, ENDPOINT) for i in reversed(self.store.ids_where(ENDPOINT, []))]
        every = self._configured() + stored
        data = [self._render(e, call) for e in every[:limit]]
        return objects.list_object(data, len(every) > limit, "/v1/webhook_endpoints")

    def retrieve_webhook_endpoint(self, call: ApiCall, endpoint_id: str) -> dict[str, Any]:
        """GET /v1/webhook_endpoints/{id}."""
        check_known(call.params, {"expand"})
        return self._render(self._endpoint(endpoint_id), call)

    def update_webhook_endpoint(self, call: ApiCall, endpoint_id: str) -> dict[str, Any]:
        """POST /v1/webhook_endpoints/{id}: url, enabled_events, disabled, description, metadata."""
        params = call.params
        check_known(params, {"url", "enabled_events", "disabled", "description", "metadata", "expand"})
        endpoint = self._endpoint(endpoint_id, writable=True)
        if "url" in params:
            endpoint["url"] = _url(get_str(params, "url", required=True, max_len=5000) or "")
        if "enabled_events" in params:
            endpoint["enabled_events"] = _events(params)
        disabled = get_bool(params, "disabled")
        if disabled is not None:
            endpoint["status"] = "disabled" if disabled else "enabled"
        if "description" in params:
            endpoint["description"] = get_str(params, "description", max_len=5000)
        if "metadata" in params:
            endpoint["metadata"] = {**endpoint["metadata"], **get_metadata(params)}
        self.store.update(endpoint)
        return self._render(endpoint, call)

    def delete_webhook_endpoint(self, call: ApiCall, endpoint_id: str) -> dict[str, Any]:
        """DELETE /v1/webhook_endpoints/{id}."""
        self._endpoint(endpoint_id, writable=True)
        self.store.delete(endpoint_id)
        return {"id": endpoint_id, "object": ENDPOINT, "deleted": True}

    def _endpoint(self, endpoint_id: str, *, writable: bool = False) -> dict[str, Any]:
        for e in self._configured():
            if e["id"] == endpoint_id:
                if writable:
                    raise invalid(
                        "This endpoint comes from the sandbox's configuration (webhook_url, connect_webhook_url): "
                        "change it there (POST /_sandbox/config).",
                        "id",
                    )
                return e
        found = self.store.get(endpoint_id, ENDPOINT)
        if found is None:
            raise no_such(ENDPOINT, endpoint_id)
        return found

    # -- the platform's account, Connect, country specs --------------------------------------

    def retrieve_platform_account(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/account: the platform's own account (its country from the configuration)."""
        check_known(call.params, {"expand"})
        country = self.config.platform_country.upper()
        account = co.account(
            account_id=PLATFORM_ACCOUNT, type_="standard", country=country, email=None, metadata={}, now=0
        )
        account.update(
            default_currency=DEFAULT_CURRENCY.get(country, "eur" if country in EUROPE else "usd"),
            charges_enabled=True,
            payouts_enabled=True,
            details_submitted=True,
            capabilities={"card_payments": "active", "transfers": "active"},
            requirements=co.requirements([]),
            controller={"type": "account"},
        )
        return self._render(account, call)

    def check_connect(self) -> None:
        """Connect must be enabled on the platform for /v1/accounts and /v1/account_links."""
        if not self.config.connect_enabled:
            raise ApiError(
                400,
                "invalid_request_error",
                "You can only create new accounts if you've signed up for Connect, which you can learn how to do "
                "at https://stripe.com/docs/connect.",
                replayable=False,
            )

    def retrieve_country_spec(self, call: ApiCall, country: str) -> dict[str, Any]:
        """GET /v1/country_specs/{country}: the currencies it may charge in and the countries it
        may transfer to (one region, see EUROPE)."""
        check_known(call.params, {"expand"})
        code = country.upper()
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise no_such("country_spec", country)
        region = EUROPE if code in EUROPE else [code]
        return {
            "id": code,
            "object": "country_spec",
            "default_currency": DEFAULT_CURRENCY.get(code, "eur" if code in EUROPE else "usd"),
            "supported_bank_account_currencies": {},
            "supported_payment_currencies": sorted(PRESENTMENT),
            "supported_payment_methods": ["card"],
            "supported_transfer_countries": region,
            "verification_fields": {},
        }


def _endpoint(
    endpoint_id: str, *, url: str, events: list[str], connect: bool, version: str | None, now: int
) -> dict[str, Any]:
    return {
        "id": endpoint_id,
        "object": ENDPOINT,
        "api_version": version,
        "application": co.PLATFORM_APPLICATION if connect else None,
        "created": now,
        "description": None,
        "enabled_events": events,
        "livemode": False,
        "metadata": {},
        "secret": None,
        "status": "enabled",
        "url": url,
        "_connect": connect,
    }


def _url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise invalid("Invalid URL: must be an http or https URL", "url", "url_invalid")
    return url


def _events(params: dict[str, Any]) -> list[str]:
    events = get_list(params, "enabled_events")
    if not events:
        raise invalid("Missing required param: enabled_events.", "enabled_events", "parameter_missing")
    for n, name in enumerate(events):
        if not isinstance(name, str) or not _EVENT_TYPE.fullmatch(name):
            raise invalid(f"Invalid enabled_events[{n}]: {name}", f"enabled_events[{n}]")
    return list(dict.fromkeys(events))
