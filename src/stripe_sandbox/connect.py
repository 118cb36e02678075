"""Stripe Connect in the sandbox: Express accounts, hosted onboarding through account links,
the balance transactions of the platform and of the connected accounts, and reading transfers and
application fees. Destination charges and the refunds of them: `destinations.py`; separate
transfers: `transfers.py`.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from . import connect_objects as co
from . import objects
from .errors import invalid, no_such
from .params import check_known, get_dict, get_metadata, get_str
from .store import Filter

if TYPE_CHECKING:
    from .service import ApiCall, Origin

ACCOUNT_PARAMS = {
    "type",
    "country",
    "email",
    "capabilities",
    "controller",
    "business_type",
    "business_profile",
    "metadata",
    "expand",
    "default_currency",
    "settings",
    "tos_acceptance",
}
ACCOUNT_TYPES = ("express", "standard", "custom")
LINK_TTL_S = 300
LINK_KEY = "account_link:"


PLATFORM = "platform"  # the `_account` of the platform's own balance transactions


class ConnectOps:
    """The Connect part of :class:`stripe_sandbox.service.Sandbox` (a mixin)."""

    # provided by Sandbox
    store: Any

    def now(self) -> int: ...  # pragma: no cover

    def _render(self, obj: dict[str, Any], call: ApiCall, prefix: str = "") -> dict[str, Any]: ...  # pragma: no cover

    def _emit(  # pragma: no cover
        self, type_: str, obj: dict, origin: Origin, previous: dict | None = None, account: str | None = None
    ) -> dict: ...

    def _platform_origin(self) -> Origin: ...  # pragma: no cover

    def _list(self, type_: str, call: ApiCall, filters: list, url: str, known: set[str]) -> dict[str, Any]: ...

    def public_url(self, base_url: str | None) -> str: ...  # pragma: no cover

    if TYPE_CHECKING:  # EndpointOps's, later in Sandbox's bases: a stub here would hide it

        def check_connect(self) -> None: ...

    # -- accounts --------------------------------------------------------------------

    def create_account(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/accounts."""
        self.check_connect()
        params = call.params
        check_known(params, ACCOUNT_PARAMS)
        type_ = get_str(params, "type")
        controller = get_dict(params, "controller")
        dashboard = get_dict(controller, "stripe_dashboard", "controller[stripe_dashboard]")
        if type_ is None and get_str(dashboard, "type") == "express":
            type_ = "express"
        if type_ not in ACCOUNT_TYPES:
            raise invalid("Invalid type: must be one of express, standard, or custom", "type")
        country = (get_str(params, "country") or "US").upper()
        email = get_str(params, "email", max_len=800)
        capabilities = get_dict(params, "capabilities")
        for name in capabilities:
            if name not in ("card_payments", "transfers"):
                raise invalid(f"The sandbox supports only the card_payments and transfers capabilities: {name}")
        account = co.account(
            account_id=objects.new_id("acct_", 16),
            type_=type_,
            country=country,
            email=email,
            metadata=get_metadata(params),
            now=self.now(),
        )
        self.store.insert(account)
        return self._render(account, call)

    def retrieve_account(self, call: ApiCall, account_id: str) -> dict[str, Any]:
        """GET /v1/accounts/{id}."""
        self.check_connect()
        check_known(call.params, {"expand"})
        return self._render(self._account(account_id), call)

    def list_accounts(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/accounts."""
        self.check_connect()
        return self._list("account", call, [], "/v1/accounts", set())

    def _account(self, account_id: str, param: str = "account", status: int = 404) -> dict[str, Any]:
        account = self.store.get(account_id, "account")
        if account is None:
            raise no_such("account", account_id, param, status=status)
        return account

    # -- hosted onboarding -------------------------------------------------------------

    def create_account_link(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/account_links: a single-use link to the hosted onboarding form."""
        self.check_connect()
        params = call.params
        check_known(params, {"account", "type", "refresh_url", "return_url", "collect", "collection_options", "expand"})
        account_id = get_str(params, "account", required=True) or ""
        self._account(account_id, status=400)
        kind = get_str(params, "type", required=True)
        if kind not in ("account_onboarding", "account_update"):
            raise invalid("Invalid type: must be one of account_onboarding or account_update", "type")
        urls = {}
        for name in ("refresh_url", "return_url"):
            url = get_str(params, name, required=True, max_len=5000) or ""
            if not url.startswith(("http://", "https://")):
                raise invalid("Not a valid URL", name, "url_invalid")
            urls[name] = url
        now = self.now()
        token = secrets.token_urlsafe(18)
        state = {"account": account_id, "expires_at": now + LINK_TTL_S, "used": False, **urls}
        self.store.set_value(LINK_KEY + token, json.dumps(state))
        url = f"{self.public_url(call.base_url)}/setup/s/{account_id}/{token}"
        return co.account_link(url=url, now=now, expires_at=now + LINK_TTL_S)

    def open_account_link(self, account_id: str, token: str) -> tuple[dict[str, Any] | None, str | None]:
        """The account behind a link being visited, or (None, refresh_url) when the link is
        used, expired or unknown (Stripe then sends the visitor to refresh_url)."""
        with self.store.transaction():
            raw = self.store.get_value(LINK_KEY + token)
            if raw is None:
                return None, None
            state = json.loads(raw)
            if state["account"] != account_id or state["used"] or state["expires_at"] < self.now():
                return None, state["refresh_url"]
            return self.store.get(account_id, "account"), None

    def submit_onboarding(self, account_id: str, token: str, *, complete: bool) -> str | None:
        """The onboarding form was sent: use up the link, update the account (everything
        provided, or some requirements left due) and emit account.updated. Returns where to
        send the visitor (return_url, or refresh_url for a dead link)."""
        with self.store.transaction():
            raw = self.store.get_value(LINK_KEY + token)
            if raw is None:
                return None
            state = json.loads(raw)
            if state["account"] != account_id or state["used"] or state["expires_at"] < self.now():
                return state["refresh_url"]
            state["used"] = True
            self.store.set_value(LINK_KEY + token, json.dumps(state))
            self.set_onboarded(account_id, complete=complete)
            return state["return_url"]

    def set_onboarded(self, account_id: str, *, complete: bool) -> dict[str, Any]:
        """Onboarding submitted: fully (charges and payouts enabled) or with the bank account
        still due (charges enabled, payouts not). Emits account.updated when anything changed."""
        from_origin = self._platform_origin()
        with self.store.transaction():
            account = self._account(account_id)
            due = [] if complete else ["external_account"]
            previous = {
                k: account[k] for k in ("charges_enabled", "payouts_enabled", "details_submitted", "requirements")
            }
            account.update(
                details_submitted=complete,
                charges_enabled=True,
                payouts_enabled=complete,
                requirements=co.requirements(due),
                capabilities={"card_payments": "active", "transfers": "active"},
            )
            if complete:
                account["tos_acceptance"] = {"date": self.now(), "ip": "127.0.0.1", "user_agent": "sandbox"}
            changed = {k: v for k, v in previous.items() if account[k] != v}
            if changed:
                self.store.update(account)
                self._emit("account.updated", account, from_origin, changed, account=account_id)
            return account

    def _balance(
        self,
        *,
        amount: int,
        currency: str,
        source: str,
        type_: str,
        category: str,
        now: int,
        account: str | None = None,
        fee: int = 0,
    ) -> dict[str, Any]:
        """Store a balance transaction of the platform (`account` None) or of a connected account."""
        txn = co.balance_transaction(
            amount=amount,
            currency=currency,
            source=source,
            type_=type_,
            category=category,
            description=None,
            now=now,
            fee=fee,
        )
        txn["_account"] = account or PLATFORM
        self.store.insert(txn)
        return txn

    # -- transfers, application fees, balance transactions ------------------------------

    def retrieve_transfer(self, call: ApiCall, transfer_id: str) -> dict[str, Any]:
        """GET /v1/transfers/{id}."""
        return self._get(call, "transfer", transfer_id)

    def list_transfers(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/transfers (filter: destination, transfer_group)."""
        filters = [Filter(n, "=", v) for n in ("destination", "transfer_group") if (v := get_str(call.params, n))]
        return self._list("transfer", call, filters, "/v1/transfers", {"destination", "transfer_group"})

    def list_transfer_reversals(self, call: ApiCall, transfer_id: str) -> dict[str, Any]:
        """GET /v1/transfers/{id}/reversals."""
        self._get(call, "transfer", transfer_id, check=False)
        filters = [Filter("transfer", "=", transfer_id)]
        return self._list("transfer_reversal", call, filters, f"/v1/transfers/{transfer_id}/reversals", set())

    def retrieve_application_fee(self, call: ApiCall, fee_id: str) -> dict[str, Any]:
        """GET /v1/application_fees/{id}."""
        return self._get(call, "application_fee", fee_id)

    def list_application_fees(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/application_fees (filter: charge)."""
        filters = [Filter("charge", "=", v)] if (v := get_str(call.params, "charge")) else []
        return self._list("application_fee", call, filters, "/v1/application_fees", {"charge"})

    def list_fee_refunds(self, call: ApiCall, fee_id: str) -> dict[str, Any]:
        """GET /v1/application_fees/{id}/refunds."""
        self._get(call, "application_fee", fee_id, check=False)
        filters = [Filter("fee", "=", fee_id)]
        return self._list("fee_refund", call, filters, f"/v1/application_fees/{fee_id}/refunds", set())

    def retrieve_balance_transaction(self, call: ApiCall, txn_id: str) -> dict[str, Any]:
        """GET /v1/balance_transactions/{id} (of the account in the Stripe-Account header, else
        the platform's)."""
        check_known(call.params, {"expand"})
        txn = self.store.get(txn_id, "balance_transaction")
        if txn is None or txn.get("_account", PLATFORM) != (call.stripe_account or PLATFORM):
            raise no_such("balance_transaction", txn_id)
        return self._render(txn, call)

    def list_balance_transactions(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/balance_transactions: the platform's, or with a Stripe-Account header a
        connected account's (filters: type, source)."""
        if call.stripe_account:
            self._account(call.stripe_account, "Stripe-Account", status=403)
        filters = [Filter("_account", "=", call.stripe_account or PLATFORM)]
        filters += [Filter(n, "=", v) for n in ("type", "source") if (v := get_str(call.params, n))]
        return self._list("balance_transaction", call, filters, "/v1/balance_transactions", {"type", "source"})

    def _get(self, call: ApiCall, type_: str, object_id: str, check: bool = True) -> dict[str, Any]:
        if check:
            check_known(call.params, {"expand"})
        obj = self.store.get(object_id, type_)
        if obj is None:
            raise no_such(type_, object_id)
        return self._render(obj, call)
