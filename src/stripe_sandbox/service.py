"""The sandbox's ledger: Checkout Sessions, payments, refunds and events, kept in SQLite."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import currencies as money_rules
from . import objects
from .config import SandboxConfig
from .connect import ConnectOps
from .customers import CustomerOps
from .destinations import DestinationOps, get_fee_params
from .endpoints import EndpointOps
from .errors import ApiError, conflict, invalid, missing_param, no_such
from .intents import IntentOps
from .params import (
    check_known,
    get_bool,
    get_created_filter,
    get_dict,
    get_expand,
    get_int,
    get_list,
    get_metadata,
    get_str,
)
from .store import CursorNotFound, Filter, IdempotentResult, Store
from .transfers import TransferOps
from .versions import endpoint_api_version

SESSION = "checkout.session"
MIN_EXPIRY_S = 30 * 60
MAX_EXPIRY_S = 24 * 60 * 60
IDEMPOTENCY_TTL_S = 24 * 60 * 60
SUCCESS_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
SEEDED_URL = "http://127.0.0.1:9/seeded"

# Parameters that change what the sandbox does or returns.
SESSION_PARAMS = {
    "mode",
    "line_items",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer_email",
    "customer",
    "metadata",
    "expires_at",
    "payment_intent_data",
    "expand",
    "ui_mode",
    "locale",
    "submit_type",
    "billing_address_collection",
    "allow_promotion_codes",
    "allowed_payment_method_types",
}
# Real Stripe parameters accepted for compatibility; they have no effect in the sandbox.
SESSION_PARAMS_IGNORED = {
    "adaptive_pricing",
    "after_expiration",
    "automatic_tax",
    "branding_settings",
    "consent_collection",
    "currency",
    "custom_fields",
    "custom_text",
    "customer_creation",
    "customer_update",
    "discounts",
    "excluded_payment_method_types",
    "invoice_creation",
    "name_collection",
    "optional_items",
    "origin_context",
    "payment_method_collection",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "permissions",
    "phone_number_collection",
    "redirect_on_completion",
    "return_url",
    "saved_payment_method_options",
    "shipping_address_collection",
    "shipping_options",
    "tax_id_collection",
    "wallet_options",
}
PAYMENT_INTENT_DATA_PARAMS = {
    "metadata",
    "description",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
    "setup_future_usage",
    "capture_method",
    "transfer_data",
    "application_fee_amount",
    "on_behalf_of",
}
REFUND_PARAMS = {
    "payment_intent",
    "charge",
    "amount",
    "reason",
    "metadata",
    "expand",
    "instructions_email",
    "origin",
    "refund_application_fee",
    "reverse_transfer",
}
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
LIST_PARAMS = {"limit", "starting_after", "ending_before", "created", "expand"}

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Origin:
    """What caused an event: an API request, or the sandbox itself (ids None)."""

    request_id: str | None
    idempotency_key: str | None
    api_version: str


@dataclass(frozen=True)
class ApiCall:
    """One /v1 request, already authenticated and parsed."""

    method: str
    path: str
    params: dict[str, Any]
    fingerprint: str
    request_id: str
    idempotency_key: str | None
    api_version: str
    base_url: str
    stripe_account: str | None = None  # the Stripe-Account header: acting as a connected account

    @property
    def origin(self) -> Origin:
        """This request as the origin of events."""
        return Origin(self.request_id, self.idempotency_key, self.api_version)


@dataclass(frozen=True)
class ApiResult:
    """The response to a /v1 request."""

    status: int
    body: str
    request_id: str
    replayed: bool = False


@dataclass(frozen=True)
class Card:
    """A card submitted on the hosted page (already validated)."""

    number: str
    exp_month: int
    exp_year: int
    name: str


def fingerprint(method: str, path: str, pairs: list[tuple[str, str]]) -> str:
    """A digest of a request's method, path and parameters, for idempotency checks."""
    canonical = json.dumps([method.upper(), path, sorted(pairs)])
    return hashlib.sha256(canonical.encode()).hexdigest()


class Sandbox(ConnectOps, DestinationOps, TransferOps, CustomerOps, IntentOps, EndpointOps):
    """All sandbox operations; each runs in one SQLite transaction."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store

    # -- clock -------------------------------------------------------------------

    def clock_offset(self) -> float:
        """Seconds the sandbox clock runs ahead of real time."""
        return float(self.store.get_value("clock_offset", "0") or 0)

    def now(self) -> int:
        """The sandbox's current Unix time."""
        return int(time.time() + self.clock_offset())

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the sandbox clock forward (persisted)."""
        with self.store.transaction():
            self.store.set_value("clock_offset", repr(self.clock_offset() + seconds))
        return self.clock()

    def clock(self) -> dict[str, Any]:
        """The sandbox clock as JSON."""
        return {"now": self.now(), "offset_s": self.clock_offset(), "real_time": time.time()}

    # -- request execution -------------------------------------------------------

    def execute(self, call: ApiCall, op: Callable[[ApiCall], dict[str, Any]]) -> ApiResult:
        """Run an operation atomically, honouring and recording the Idempotency-Key."""
        scope = hashlib.sha256(self.config.api_key.encode()).hexdigest()[:16]
        key = call.idempotency_key if call.method == "POST" else None
        try:
            with self.store.transaction():
                prior = self.store.get_idempotent(scope, key) if key else None
                if prior is not None:
                    if prior.fingerprint != call.fingerprint:
                        raise _idempotency_mismatch(key or "")
                    return ApiResult(prior.status, prior.body, prior.request_id, replayed=True)
                try:
                    status, body = 200, op(call)
                except ApiError as err:
                    if not err.replayable:
                        raise
                    status, body = err.status, err.body()
                text = _dumps(body)
                if key:
                    result = IdempotentResult(call.fingerprint, status, text, call.request_id)
                    self.store.put_idempotent(scope, key, result, time.time())
                return ApiResult(status, text, call.request_id)
        except ApiError as err:
            return ApiResult(err.status, json.dumps(err.body(), indent=2), call.request_id)

    def purge_idempotency(self) -> int:
        """Forget Idempotency-Keys older than 24 hours (real time)."""
        with self.store.transaction():
            return self.store.purge_idempotent(time.time() - IDEMPOTENCY_TTL_S)

    # -- presentation --------------------------------------------------------------

    def present(self, obj: dict[str, Any], base_url: str | None, *, fresh: bool = False) -> dict[str, Any]:
        """The public form of a stored object (private ``_`` keys removed); its values are
        copied unless the object is `fresh` (just read from the store, used for nothing else)."""
        shown = {k: v if fresh else objects.json_copy(v) for k, v in obj.items() if not k.startswith("_")}
        if shown["object"] == SESSION:
            shown["url"] = f"{self.public_url(base_url)}/c/pay/{shown['id']}" if shown["status"] == "open" else None
        elif shown["object"] == "event":
            shown["pending_webhooks"] = sum(not d.delivered for d in self.store.deliveries_of(shown["id"]))
        return shown

    def public_url(self, base_url: str | None) -> str:
        """Where browsers reach the sandbox."""
        return (self.config.public_url or base_url or "http://127.0.0.1:12111").rstrip("/")

    def _render(self, obj: dict[str, Any], call: ApiCall, prefix: str = "", *, fresh: bool = False) -> dict[str, Any]:
        shown = self.present(obj, call.base_url, fresh=fresh)
        for path in get_expand(call.params):
            if prefix:
                if not path.startswith(prefix):
                    raise invalid(f"This property cannot be expanded ({path}).", "expand")
                path = path[len(prefix) :]
            self._expand(shown, path.split("."), path, call.base_url)
        return shown

    def _expand(self, node: dict[str, Any], parts: list[str], path: str, base: str) -> None:
        head, rest = parts[0], parts[1:]
        if head == "line_items" and node.get("object") == SESSION:
            node["line_items"] = self._line_item_list(node["id"])
        elif head not in node:
            raise invalid(f"This property cannot be expanded ({path}).", "expand")
        elif isinstance(node[head], str):
            target = self.store.get(node[head])
            if target is None:
                raise invalid(f"This property cannot be expanded ({path}).", "expand")
            node[head] = self.present(target, base)
        value = node.get(head)
        if rest and isinstance(value, dict):
            if value.get("object") == "list" and rest[0] == "data":
                for item in value["data"]:
                    if len(rest) > 1:
                        self._expand(item, rest[1:], path, base)
            else:
                self._expand(value, rest, path, base)

    def _list(self, type_: str, call: ApiCall, filters: list[Filter], url: str, known: set[str]) -> dict[str, Any]:
        params = call.params
        for name in params:
            if name not in LIST_PARAMS | known:
                # a filter Stripe applies: answering the unfiltered list would mislead, so say so
                raise invalid(f"The Stripe sandbox does not filter lists by {name}.", name)
        limit = get_int(params, "limit", minimum=1, maximum=100) or 10
        after = get_str(params, "starting_after")
        before = get_str(params, "ending_before")
        filters = filters + [Filter("created", op, v) for op, v in get_created_filter(params)]
        try:
            items, has_more = self.store.page(type_, filters, limit, after, before)
        except CursorNotFound as missing:
            param = "starting_after" if after else "ending_before"
            raise invalid(f"No such {type_}: '{missing}'", param, "resource_missing") from None
        data = [self._render(item, call, prefix="data.", fresh=True) for item in items]
        return objects.list_object(data, has_more, url)

    # -- events ------------------------------------------------------------------

    def _emit(
        self,
        type_: str,
        obj: dict[str, Any],
        origin: Origin,
        previous: dict[str, Any] | None = None,
        account: str | None = None,
    ) -> dict[str, Any]:
        event = objects.event(
            type_=type_,
            data_object=self.present(obj, None),
            now=self.now(),
            api_version=endpoint_api_version(self.config),
            request_id=origin.request_id,
            idempotency_key=origin.idempotency_key,
            pending_webhooks=0,
            previous_attributes=previous,
            account=account,
        )
        targets = self.targets(event)
        event["pending_webhooks"] = len(targets)
        self.store.insert(event)
        for endpoint_id in targets:
            self.store.queue_delivery(event["id"], endpoint_id, time.time())
        return event

    def event_payload(self, event_id: str, endpoint_id: str | None = None) -> str | None:
        """The JSON body sent to a webhook endpoint for an event: rendered in that endpoint's API
        version when it was created with one ("the API version that events are rendered as for
        this webhook endpoint", https://docs.stripe.com/api/webhook_endpoints/object); the
        sandbox knows only the pinned version's shapes, so the version is the label it carries."""
        event = self.store.get(event_id, "event")
        if event is None:
            return None
        shown = self.present(event, None)
        version = self.endpoint_version(endpoint_id) if endpoint_id else None
        if version:
            shown = {**shown, "api_version": version}
        return json.dumps(shown, indent=2)

    def redeliver(self, event_ids: list[str] | None = None) -> int:
        """Queue events (all by default) for delivery once more, to the endpoints that want
        each now; how many events were queued."""
        with self.store.transaction():
            ids = event_ids or self.store.ids_where("event", [])
            queued = 0
            for event_id in ids:
                event = self.store.get(event_id, "event")
                targets = self.targets(event) if event is not None else []
                for endpoint_id in targets:
                    self.store.queue_delivery(event_id, endpoint_id, time.time())
                queued += bool(targets)
        return queued

    def list_events(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/events."""
        params = call.params
        filters = []
        type_ = get_str(params, "type")
        types = get_list(params, "types")
        if type_ and types:
            raise invalid("You may not specify both `type` and `types`.", "types")
        if type_:
            pattern = type_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            filters.append(Filter("type", "like", pattern.replace("*", "%")))
        if types:
            if len(types) > 20:
                raise invalid("You may pass at most 20 `types`.", "types")
            filters.append(Filter("type", "in", types))
        return self._list("event", call, filters, "/v1/events", {"type", "types"})

    def retrieve_event(self, call: ApiCall, event_id: str) -> dict[str, Any]:
        """GET /v1/events/{id}."""
        check_known(call.params, {"expand"})
        event = self.store.get(event_id, "event")
        if event is None:
            raise no_such("event", event_id)
        return self._render(event, call)

    # -- checkout sessions ---------------------------------------------------------

    def create_session(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/checkout/sessions."""
        params = call.params
        check_known(params, SESSION_PARAMS | SESSION_PARAMS_IGNORED)
        now = self.now()
        _check_mode(params)
        success_url = _get_url(params, "success_url", required=True)
        cancel_url = _get_url(params, "cancel_url")
        customer_email = get_str(params, "customer_email", max_len=800)
        if customer_email and not _EMAIL.fullmatch(customer_email):
            raise invalid(f"Invalid email address: {customer_email}", "customer_email", "email_invalid")
        customer = get_str(params, "customer")
        if customer:
            self.customer_of(customer)
            if customer_email:
                raise invalid(
                    "You may only specify one of these parameters: customer, customer_email.", "customer_email"
                )
        items, currency, amount = _line_items(params, now)
        intent_data = _payment_intent_data(params)
        self.destination_of(intent_data, amount)
        session = objects.checkout_session(
            session_id=objects.new_id("cs_test_", 58),
            now=now,
            expires_at=_expires_at(params, now),
            currency=currency,
            amount=amount,
            success_url=success_url,
            cancel_url=cancel_url,
            client_reference_id=get_str(params, "client_reference_id", max_len=200),
            customer_email=customer_email,
            metadata=get_metadata(params),
            extra=_session_extras(params),
        )
        session["_line_items"] = items
        session["_payment_intent_data"] = intent_data
        session["_api_version"] = call.api_version
        session["customer"] = customer
        self.store.insert(session)
        return self._render(session, call)

    def retrieve_session(self, call: ApiCall, session_id: str) -> dict[str, Any]:
        """GET /v1/checkout/sessions/{id}."""
        check_known(call.params, {"expand"})
        return self._render(self._session(session_id, lazily_expire=True), call)

    def list_sessions(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/checkout/sessions."""
        self.expire_due()
        filters = []
        status = get_str(call.params, "status")
        if status:
            if status not in ("open", "complete", "expired"):
                raise invalid(f"Invalid status: {status}", "status")
            filters.append(Filter("status", "=", status))
        for name in ("payment_intent", "customer", "customer_account", "payment_link", "subscription"):
            value = get_str(call.params, name)
            if value:
                filters.append(Filter(name, "=", value))
        details = get_dict(call.params, "customer_details")
        if details:
            filters.append(Filter("customer_details.email", "=", get_str(details, "email", required=True)))
        known = {
            "status",
            "payment_intent",
            "customer",
            "customer_account",
            "customer_details",
            "payment_link",
            "subscription",
        }
        return self._list(SESSION, call, filters, "/v1/checkout/sessions", known)

    def list_line_items(self, call: ApiCall, session_id: str) -> dict[str, Any]:
        """GET /v1/checkout/sessions/{id}/line_items."""
        check_known(call.params, {"limit", "starting_after", "ending_before", "expand"})
        self._session(session_id)
        listing = self._line_item_list(session_id)
        limit = get_int(call.params, "limit", minimum=1, maximum=100) or 10
        items = listing["data"]
        after = get_str(call.params, "starting_after")
        if after:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise invalid(f"No such line item: '{after}'", "starting_after", "resource_missing")
            items = items[ids.index(after) + 1 :]
        return objects.list_object(items[:limit], len(items) > limit, listing["url"])

    def _line_item_list(self, session_id: str) -> dict[str, Any]:
        session = self.store.get(session_id, SESSION) or {}
        return objects.list_object(
            copy.deepcopy(session.get("_line_items", [])),
            False,
            f"/v1/checkout/sessions/{session_id}/line_items",
        )

    def expire_session(self, call: ApiCall, session_id: str) -> dict[str, Any]:
        """POST /v1/checkout/sessions/{id}/expire."""
        check_known(call.params, {"expand"})
        session = self._session(session_id)
        if session["status"] != "open":
            raise conflict(
                'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{session["status"]}".'
            )
        self._expire(session, call.origin)
        return self._render(session, call)

    def expire_due(self) -> int:
        """Expire every open session whose expires_at has passed; returns how many."""
        with self.store.transaction():
            due = self.store.ids_where(SESSION, [Filter("status", "=", "open"), Filter("expires_at", "<=", self.now())])
            for session_id in due:
                self._expire_if_due(self.store.get(session_id, SESSION) or {})
        return len(due)

    def _session(self, session_id: str, lazily_expire: bool = False) -> dict[str, Any]:
        session = self.store.get(session_id, SESSION)
        if session is None:
            raise no_such(SESSION, session_id, "session")
        if lazily_expire:
            self._expire_if_due(session)
        return session

    def _expire_if_due(self, session: dict[str, Any]) -> None:
        if session.get("status") == "open" and session["expires_at"] <= self.now():
            self._expire(session, self._own_origin(session))

    def _expire(self, session: dict[str, Any], origin: Origin) -> None:
        session["status"] = "expired"
        self.store.update(session)
        self._emit("checkout.session.expired", session, origin)

    @staticmethod
    def _own_origin(session: dict[str, Any]) -> Origin:
        return Origin(None, None, session.get("_api_version") or objects.DEFAULT_API_VERSION)

    def _platform_origin(self) -> Origin:
        """Events the sandbox causes itself (onboarding, for instance)."""
        return Origin(None, None, objects.DEFAULT_API_VERSION)

    # -- hosted page ---------------------------------------------------------------

    def session_for_page(self, session_id: str) -> dict[str, Any] | None:
        """The session behind a hosted page (expired first if due), or None."""
        with self.store.transaction():
            session = self.store.get(session_id, SESSION)
            if session is not None:
                self._expire_if_due(session)
            return session

    def pay(self, session_id: str, card: Card) -> tuple[dict[str, Any] | None, str | None]:
        """Charge an accepted card for an open session, atomically.

        Returns the session as it now is and the id of the completed event (None when
        nothing was paid because the session is unknown or no longer open).
        """
        with self.store.transaction():
            session = self.session_for_page(session_id)
            if session is None or session["status"] != "open":
                return session, None
            self._complete(session, card)
            self.store.update(session)
            event = self._emit("checkout.session.completed", session, self._own_origin(session))
            return session, event["id"]

    def _complete(self, session: dict[str, Any], card: Card) -> None:
        """Charge the card for an open session (payment intent, charge, their split stored) and
        mark the session complete and paid; the caller stores the session."""
        intent, charge = self._charge(session, card)
        self.split_charge(intent, charge, session["_payment_intent_data"], self._own_origin(session))
        self.store.insert(intent)
        self.store.insert(charge)
        session.update(
            status="complete",
            payment_status="paid",
            payment_intent=intent["id"],
            customer_details=objects.customer_details(email=self._payer_email(session), name=card.name),
            collected_information={
                "business_name": None,
                "individual_name": None,
                "shipping_details": None,
            },
        )

    def _payer_email(self, session: dict[str, Any]) -> str | None:
        customer = session.get("customer")
        if customer:
            return (self.store.get(customer, "customer") or {}).get("email")
        return session["customer_email"]

    # -- bulk seeding (a control endpoint, not Stripe's API) ----------------------

    def seed_sessions(self, specs: list[dict[str, Any]]) -> list[str]:
        """Store Checkout Sessions as if made and settled in the past, without events, oldest
        first (a list is newest first by insertion): each spec `{created, expires_at, amount,
        currency, state: open | expired | paid, metadata?, client_reference_id?, customer_email?}`.
        A `paid` one has its payment intent and charge. Returns the new ids, in the specs' order."""
        ids = [objects.new_id("cs_test_", 58) for _ in specs]
        with self.store.transaction():
            for i in sorted(range(len(specs)), key=lambda i: int(specs[i]["created"])):
                self.store.insert(self._seeded(ids[i], specs[i]))
        return ids

    def _seeded(self, session_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        created, amount, currency = int(spec["created"]), int(spec["amount"]), str(spec["currency"]).lower()
        item = objects.line_item(currency=currency, unit_amount=amount, quantity=1, name="Seeded session", now=created)
        metadata = {str(k): str(v) for k, v in (spec.get("metadata") or {}).items()}
        session = objects.checkout_session(
            session_id=session_id,
            now=created,
            expires_at=int(spec["expires_at"]),
            currency=currency,
            amount=amount,
            success_url=SEEDED_URL,
            cancel_url=SEEDED_URL,
            client_reference_id=spec.get("client_reference_id"),
            customer_email=spec.get("customer_email"),
            metadata=metadata,
            extra={},
        )
        session["_line_items"] = [item]
        session["_payment_intent_data"] = {"metadata": metadata}
        session["_api_version"] = objects.DEFAULT_API_VERSION
        state = spec["state"]
        if state == "expired":
            session["status"] = "expired"
        elif state == "paid":
            self._complete(session, Card(SUCCESS_CARD, 12, 2099, "Seeded Payer"))
        elif state != "open":
            raise ValueError(f"unknown state {state!r}")
        return session

    def _charge(self, session: dict[str, Any], card: Card) -> tuple[dict[str, Any], dict[str, Any]]:
        data = session["_payment_intent_data"]
        customer = session.get("customer")
        method = objects.new_id("pm_")
        if customer and data.get("setup_future_usage"):
            # "If a Customer has been provided ... Checkout attaches the payment method to the
            # Customer" (the pinned SDK's setup_future_usage): the card is saved for later charges.
            email = (self.store.get(customer, "customer") or {}).get("email")
            saved = self.save_card(
                customer, number=card.number, exp_month=card.exp_month, exp_year=card.exp_year, name=card.name,
                email=email,
            )  # fmt: skip
            method = saved["id"]
        intent = objects.payment_intent(
            intent_id=objects.new_id("pi_"),
            charge_id=objects.new_id("ch_"),
            payment_method=method,
            now=self.now(),
            amount=session["amount_total"],
            currency=session["currency"],
            metadata=data["metadata"],
            description=data.get("description"),
            receipt_email=data.get("receipt_email"),
            extra={
                k: data[k]
                for k in (
                    "statement_descriptor",
                    "statement_descriptor_suffix",
                    "transfer_group",
                    "setup_future_usage",
                )
                if k in data
            },
        )
        charge = objects.charge(
            charge_id=intent["latest_charge"],
            intent=intent,
            payment_method=method,
            billing_name=card.name,
            email=session["customer_email"],
            card=objects.card_details(card.number, card.exp_month, card.exp_year),
        )
        intent["customer"] = charge["customer"] = customer
        charge["transfer_group"] = intent.get("transfer_group")
        return intent, charge

    # -- payment intents, charges, refunds -----------------------------------------

    def retrieve_payment_intent(self, call: ApiCall, intent_id: str) -> dict[str, Any]:
        """GET /v1/payment_intents/{id}."""
        check_known(call.params, {"expand", "client_secret"})
        intent = self.store.get(intent_id, "payment_intent")
        if intent is None:
            raise no_such("payment_intent", intent_id, "intent")
        return self._render(intent, call)

    def retrieve_charge(self, call: ApiCall, charge_id: str) -> dict[str, Any]:
        """GET /v1/charges/{id}."""
        check_known(call.params, {"expand"})
        charge = self.store.get(charge_id, "charge")
        if charge is None:
            raise no_such("charge", charge_id, "charge")
        return self._render(charge, call)

    def create_refund(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/refunds."""
        params = call.params
        check_known(params, REFUND_PARAMS)
        charge = self._refundable_charge(params)
        amount = get_int(params, "amount", minimum=1)
        reason = get_str(params, "reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid(
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                "reason",
            )
        metadata = get_metadata(params)
        _check_connect_refund(params, charge)
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise conflict(f"Charge {charge['id']} has already been refunded.", "charge_already_refunded")
        amount = remaining if amount is None else amount
        if amount > remaining:
            money = objects.format_amount
            raise conflict(
                f"Refund amount ({money(amount, charge['currency'])}) is greater than "
                f"unrefunded amount on charge ({money(remaining, charge['currency'])})",
                "amount_too_large",
                "amount",
            )
        refund = objects.refund(amount=amount, charge_obj=charge, reason=reason, metadata=metadata, now=self.now())
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self.refund_split(params, charge, refund, call.origin)
        self.store.insert(refund)
        charge["refunds"]["data"].insert(0, refund)
        self.store.update(charge)
        self._emit("charge.refunded", charge, call.origin, previous)
        self._emit("refund.created", refund, call.origin)
        return self._render(refund, call)

    def _refundable_charge(self, params: Mapping[str, Any]) -> dict[str, Any]:
        intent_id = get_str(params, "payment_intent")
        charge_id = get_str(params, "charge")
        if intent_id:
            intent = self.store.get(intent_id, "payment_intent")
            if intent is None:
                raise no_such("payment_intent", intent_id, "payment_intent", status=400)
            if intent["status"] != "succeeded" or not intent["latest_charge"]:
                raise conflict(
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                )
            if charge_id and charge_id != intent["latest_charge"]:
                raise invalid("The charge does not belong to this PaymentIntent.", "charge")
            charge_id = intent["latest_charge"]
        elif not charge_id:
            raise invalid(
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        charge = self.store.get(charge_id, "charge")
        if charge is None:
            raise no_such("charge", charge_id, "charge", status=400)
        return charge

    def retrieve_refund(self, call: ApiCall, refund_id: str) -> dict[str, Any]:
        """GET /v1/refunds/{id}."""
        check_known(call.params, {"expand"})
        refund = self.store.get(refund_id, "refund")
        if refund is None:
            raise no_such("refund", refund_id)
        return self._render(refund, call)

    def list_refunds(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/refunds."""
        filters = []
        for name in ("payment_intent", "charge"):
            value = get_str(call.params, name)
            if value:
                filters.append(Filter(name, "=", value))
        return self._list("refund", call, filters, "/v1/refunds", {"payment_intent", "charge"})


def _check_connect_refund(params: Mapping[str, Any], charge: Mapping[str, Any]) -> None:
    """``reverse_transfer`` and ``refund_application_fee`` apply to a charge with a transfer or an
    application fee: "A transfer can be reversed only by the application that created the
    charge", "An application fee can be refunded only by the application that created the
    charge" (https://docs.stripe.com/api/refunds/create#create_refund-reverse_transfer). Asked
    of a charge without one, Stripe refuses the refund instead of ignoring the flag."""
    if get_bool(params, "reverse_transfer") and not charge.get("transfer"):
        raise invalid(
            f"The charge {charge['id']} has no transfer to reverse: reverse_transfer applies only to "
            "charges with a transfer (destination charges).",
            "reverse_transfer",
        )
    if get_bool(params, "refund_application_fee") and not charge.get("application_fee"):
        raise invalid(
            f"The charge {charge['id']} has no application fee to refund: refund_application_fee "
            "applies only to charges with an application fee.",
            "refund_application_fee",
        )


# -- parameter helpers for Checkout Session creation ------------------------------------


def _dumps(body: dict[str, Any]) -> str:
    """A response body: pretty-printed as Stripe's are, but a list page compact. json's C
    encoder does not indent, and a page of 100 Checkout Sessions pretty-printed cost about
    80 ms of the sandbox's CPU against 8 ms compact (the expire benchmark lists 1,000 pages)."""
    return json.dumps(body) if body.get("object") == "list" else json.dumps(body, indent=2)


def _idempotency_mismatch(key: str) -> ApiError:
    return ApiError(
        400,
        "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
        replayable=False,
    )


def _check_mode(params: Mapping[str, Any]) -> None:
    mode = get_str(params, "mode", required=True)
    if mode not in ("payment", "setup", "subscription"):
        raise invalid("Invalid mode: must be one of payment, setup, or subscription", "mode")
    if mode != "payment":
        raise invalid(f"The Stripe sandbox supports only mode=payment, not {mode}.", "mode")
    ui_mode = get_str(params, "ui_mode")
    if ui_mode not in (None, "hosted_page"):
        raise invalid(f"The Stripe sandbox supports only ui_mode=hosted_page, not {ui_mode}.", "ui_mode")


def _get_url(params: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    url = get_str(params, name, required=required, max_len=5000)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise invalid("Not a valid URL", name, "url_invalid")
    return url


def _expires_at(params: Mapping[str, Any], now: int) -> int:
    expires_at = get_int(params, "expires_at")
    if expires_at is None:
        return now + MAX_EXPIRY_S
    if expires_at < now + MIN_EXPIRY_S:
        raise invalid(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
            "expires_at",
        )
    if expires_at > now + MAX_EXPIRY_S:
        raise invalid(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            "expires_at",
        )
    return expires_at


def _line_items(params: Mapping[str, Any], now: int) -> tuple[list[dict[str, Any]], str, int]:
    raw = get_list(params, "line_items")
    if not raw:
        raise invalid("You must specify `line_items` in `payment` mode.", "line_items", "parameter_missing")
    if len(raw) > 100:
        raise invalid("You may pass at most 100 `line_items`.", "line_items")
    items = [_line_item(item, f"line_items[{i}]", now) for i, item in enumerate(raw)]
    currencies = {item["currency"] for item in items}
    if len(currencies) > 1:
        raise invalid("All line items must use the same currency.", "line_items")
    currency = currencies.pop()
    amount = sum(item["amount_total"] for item in items)
    money_rules.check_total(amount, currency, "line_items")
    return items, currency, amount


def _line_item(raw: Any, param: str, now: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid(f"Invalid hash: {param}", param)
    check_known(
        raw,
        {
            "price_data",
            "quantity",
            "price",
            "adjustable_quantity",
            "tax_rates",
            "dynamic_tax_rates",
        },
        param,
    )
    price = get_str(raw, "price", param=f"{param}[price]")
    if price:
        raise no_such("price", price, f"{param}[price]", status=400)
    price_data = get_dict(raw, "price_data", f"{param}[price_data]")
    if not price_data:
        raise missing_param(f"{param}[price_data]")
    p = f"{param}[price_data]"
    check_known(
        price_data,
        {
            "currency",
            "unit_amount",
            "product_data",
            "product",
            "unit_amount_decimal",
            "tax_behavior",
            "recurring",
        },
        p,
    )
    currency = (get_str(price_data, "currency", required=True, param=f"{p}[currency]") or "").lower()
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise invalid(f"Invalid currency: {currency}", f"{p}[currency]")
    money_rules.check_currency(currency, f"{p}[currency]")
    unit_amount = get_int(
        price_data,
        "unit_amount",
        required=True,
        minimum=0,
        maximum=99_999_999,
        param=f"{p}[unit_amount]",
    )
    money_rules.check_unit_amount(unit_amount or 0, currency, f"{p}[unit_amount]")
    product = get_str(price_data, "product", param=f"{p}[product]")
    if product:
        raise no_such("product", product, f"{p}[product]", status=400)
    product_data = get_dict(price_data, "product_data", f"{p}[product_data]")
    name = get_str(product_data, "name", required=True, max_len=250, param=f"{p}[product_data][name]")
    quantity = get_int(raw, "quantity", required=True, minimum=1, maximum=999_999, param=f"{param}[quantity]")
    return objects.line_item(
        currency=currency,
        unit_amount=unit_amount or 0,
        quantity=quantity or 1,
        name=name or "",
        now=now,
    )


def _payment_intent_data(params: Mapping[str, Any]) -> dict[str, Any]:
    raw = get_dict(params, "payment_intent_data")
    check_known(raw, PAYMENT_INTENT_DATA_PARAMS, "payment_intent_data")
    capture = get_str(raw, "capture_method", param="payment_intent_data[capture_method]")
    if capture not in (None, "automatic", "automatic_async"):
        raise invalid(
            "The Stripe sandbox supports only automatic capture.",
            "payment_intent_data[capture_method]",
        )
    data: dict[str, Any] = {
        "metadata": get_metadata(raw, param="payment_intent_data[metadata]"),
        **get_fee_params(raw),
    }
    for name in (
        "description",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_group",
        "setup_future_usage",
    ):
        value = get_str(raw, name, param=f"payment_intent_data[{name}]")
        if value is not None:
            data[name] = value
    return data


def _session_extras(params: Mapping[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for name in ("locale", "submit_type", "billing_address_collection"):
        value = get_str(params, name)
        if value is not None:
            extras[name] = value
    allow = get_bool(params, "allow_promotion_codes")
    if allow is not None:
        extras["allow_promotion_codes"] = allow
    methods = get_list(params, "allowed_payment_method_types")
    if methods:
        # a filter on the eligible methods; the sandbox's hosted page offers cards only
        extras["allowed_payment_method_types"] = methods
    return extras
