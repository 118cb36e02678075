"""Stripe Connect in the sandbox: Express accounts, hosted onboarding through account links,
destination charges and the refunds of them, moving money as Stripe documents it.

A destination charge of A with an application fee F (docs.stripe.com/connect/destination-charges):
the platform's balance gets the charge (+A), the transfer of the whole amount (-A) and the fee
(+F); the connected account's gets the payment (+A, fee F taken from it: net A - F). A refund of
r with `reverse_transfer=true` reverses the transfer in proportion to the refunded amount (here
the transfer is the whole amount, so r exactly); with `refund_application_fee=true` the fee is
refunded in proportion ("the application fee will be refunded in an amount proportional to the
amount of the charge refunded", the Refunds API). Stripe does not document its rounding; the
sandbox's (docs/payments.md): each total back is round-half-up(part x refunded total / charge),
computed on totals so a run of partial refunds never drifts, and a full refund returns all.
So teacher net + platform fee = paid - refunded, and each account's balance transactions add up.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from . import connect_objects as co
from . import objects
from .errors import invalid, no_such
from .params import check_known, get_bool, get_dict, get_int, get_metadata, get_str
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


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def proportional(part_of: int, refunded_total: int, charged: int) -> int:
    """What of `part_of` (a transfer, a fee) goes back once `refunded_total` of `charged` is
    refunded: round half up of part_of x refunded_total / charged, on totals (so a run of
    partial refunds never drifts from one refund of their sum), all of it once all is refunded."""
    if refunded_total >= charged:
        return part_of
    return min(part_of, _half_up(part_of * refunded_total, charged))


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

    # -- destination charges -------------------------------------------------------------

    def destination_of(self, data: dict[str, Any], amount: int, prefix: str = "payment_intent_data") -> None:
        """Check destination-charge parameters (a session's ``payment_intent_data`` or a
        PaymentIntent's own, ``prefix=""``) before anything is charged."""
        destination = (data.get("transfer_data") or {}).get("destination")
        fee = data.get("application_fee_amount")
        if fee is not None and destination is None and data.get("on_behalf_of") is None:
            raise invalid(
                "Can only apply an application_fee_amount when the PaymentIntent is attempting a direct "
                "payment (using an OAuth key or Stripe-Account header) or destination payment (using "
                "`transfer_data[destination]`).",
                _param(prefix, "application_fee_amount"),
            )
        if destination is None:
            return
        where = _param(prefix, "transfer_data[destination]")
        account = self._account(destination, where, status=400)
        if account["capabilities"].get("transfers") != "active":
            raise invalid(
                "Your destination account needs to have at least one of the following capabilities "
                "enabled: transfers, crypto_transfers, legacy_payments",
                where,
                "insufficient_capabilities_for_transfer",
            )
        if fee is not None and fee > amount:
            raise invalid(
                "The application fee cannot be greater than the amount of the payment.",
                _param(prefix, "application_fee_amount"),
            )

    def split_charge(self, intent: dict[str, Any], charge: dict[str, Any], data: dict[str, Any], origin: Origin):
        """Record a paid charge's balance transaction and, for a destination charge, the
        transfer of the WHOLE amount to the connected account and the application fee then taken
        from it (docs.stripe.com/connect/destination-charges, "flow of funds with fees";
        `transfer_data.amount`: "if no amount is specified, by default the entire payment amount
        is transferred"; `ApplicationFee.account`: "the Stripe account this fee was taken
        from"). Emits transfer.created and application_fee.created."""
        now, currency, amount = self.now(), charge["currency"], charge["amount"]
        txn = self._balance(
            amount=amount, currency=currency, source=charge["id"], type_="charge", category="charge", now=now
        )
        charge["balance_transaction"] = txn["id"]
        destination = (data.get("transfer_data") or {}).get("destination")
        if destination is None:
            return
        fee_amount = int(data.get("application_fee_amount") or 0)
        transfer_data = {"amount": None, "destination": destination}
        intent.update(transfer_data=transfer_data, application_fee_amount=fee_amount or None)
        transfer_id, fee_id = objects.new_id("tr_"), objects.new_id("fee_") if fee_amount else None
        t_txn = self._balance(
            amount=-amount, currency=currency, source=transfer_id, type_="transfer", category="transfer", now=now
        )
        transfer = co.transfer(
            transfer_id=transfer_id,
            amount=amount,
            currency=currency,
            destination=destination,
            charge_id=charge["id"],
            txn=t_txn["id"],
            group=intent.get("transfer_group"),
            now=now,
        )
        # The connected account's side: the payment of the whole amount, the fee taken from it.
        self._balance(
            amount=amount,
            currency=currency,
            source=transfer["destination_payment"],
            type_="payment",
            category="charge",
            now=now,
            account=destination,
            fee=fee_amount,
        )
        self.store.insert(transfer)
        charge.update(transfer=transfer_id, transfer_data=transfer_data)
        self._emit("transfer.created", transfer, origin)
        if fee_id:
            f_txn = self._balance(
                amount=fee_amount,
                currency=currency,
                source=fee_id,
                type_="application_fee",
                category="platform_earning",
                now=now,
            )
            fee = co.application_fee(
                fee_id=fee_id,
                amount=fee_amount,
                currency=currency,
                account_id=destination,
                charge_id=charge["id"],
                txn=f_txn["id"],
                now=now,
            )
            self.store.insert(fee)
            charge.update(application_fee=fee_id, application_fee_amount=fee_amount)
            self._emit("application_fee.created", fee, origin)

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

    def refund_split(self, params: dict[str, Any], charge: dict[str, Any], refund: dict[str, Any], origin: Origin):
        """For a refund of a destination charge: reverse the transfer and refund the fee in
        proportion to the refunded amount, as asked (see the module's docstring for the rounding)."""
        reverse = bool(get_bool(params, "reverse_transfer"))
        refund_fee = bool(get_bool(params, "refund_application_fee"))
        transfer = self.store.get(charge.get("transfer") or "", "transfer")
        fee = self.store.get(charge.get("application_fee") or "", "application_fee")
        if reverse and transfer is None:
            raise invalid(
                "You cannot reverse the transfer of a charge that has no transfer (reverse_transfer is only "
                "for destination charges).",
                "reverse_transfer",
            )
        if refund_fee and fee is None:
            raise invalid("This charge has no application fee to refund.", "refund_application_fee")
        txn = self._balance(
            amount=-refund["amount"],
            currency=charge["currency"],
            source=refund["id"],
            type_="refund",
            category="refund",
            now=self.now(),
        )
        refund["balance_transaction"] = txn["id"]
        refunded_total = charge["amount_refunded"]  # already includes this refund
        if reverse and transfer is not None:
            self._reverse(transfer, charge, refund, refunded_total, origin)
        if refund_fee and fee is not None:
            self._refund_fee(fee, charge, refunded_total, origin)

    def _reverse(self, transfer: dict, charge: dict, refund: dict, refunded_total: int, origin: Origin) -> None:
        now, currency = self.now(), charge["currency"]
        target = proportional(transfer["amount"], refunded_total, charge["amount"])
        amount = target - transfer["amount_reversed"]
        if amount <= 0:
            return
        reversal_id = objects.new_id("trr_")
        txn = self._balance(
            amount=amount,
            currency=currency,
            source=reversal_id,
            type_="transfer_refund",
            category="transfer_reversal",
            now=now,
        )
        reversal = co.transfer_reversal(
            reversal_id=reversal_id,
            amount=amount,
            currency=currency,
            transfer_id=transfer["id"],
            refund_id=refund["id"],
            txn=txn["id"],
            now=now,
        )
        self._balance(
            amount=-amount,
            currency=currency,
            source=reversal["destination_payment_refund"],
            type_="payment_refund",
            category="refund",
            now=now,
            account=transfer["destination"],
        )
        self.store.insert(reversal)
        previous = {"amount_reversed": transfer["amount_reversed"], "reversed": transfer["reversed"]}
        transfer["amount_reversed"] = target
        transfer["reversed"] = target >= transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        self.store.update(transfer)
        refund["transfer_reversal"] = reversal["id"]
        self._emit("transfer.reversed", transfer, origin, previous)

    def _refund_fee(self, fee: dict, charge: dict, refunded_total: int, origin: Origin) -> None:
        now, currency = self.now(), charge["currency"]
        target = proportional(fee["amount"], refunded_total, charge["amount"])
        amount = target - fee["amount_refunded"]
        if amount <= 0:
            return
        refund_id = objects.new_id("fr_")
        txn = self._balance(
            amount=-amount,
            currency=currency,
            source=refund_id,
            type_="application_fee_refund",
            category="platform_earning_refund",
            now=now,
        )
        # The fee goes back to the account it was taken from.
        self._balance(
            amount=amount,
            currency=currency,
            source=refund_id,
            type_="application_fee_refund",
            category="fee",
            now=now,
            account=fee["account"],
        )
        fee_refund = co.fee_refund(
            refund_id=refund_id, amount=amount, currency=currency, fee_id=fee["id"], txn=txn["id"], now=now
        )
        self.store.insert(fee_refund)
        previous = {"amount_refunded": fee["amount_refunded"], "refunded": fee["refunded"]}
        fee["amount_refunded"] = target
        fee["refunded"] = target >= fee["amount"]
        fee["refunds"]["data"].insert(0, fee_refund)
        self.store.update(fee)
        self._emit("application_fee.refunded", fee, origin, previous)

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


def _param(prefix: str, name: str) -> str:
    """`name` as Stripe names it in an error: inside `prefix` (`payment_intent_data[...]`) or bare."""
    if not prefix:
        return name
    head, _, rest = name.partition("[")
    return f"{prefix}[{head}]" + (f"[{rest}" if rest else "")


def get_fee_params(raw: dict[str, Any], prefix: str = "payment_intent_data") -> dict[str, Any]:
    """The destination-charge part of a session's ``payment_intent_data`` (or, ``prefix=""``, of
    a PaymentIntent's own parameters)."""
    data: dict[str, Any] = {}
    transfer_data = get_dict(raw, "transfer_data", _param(prefix, "transfer_data"))
    check_known(transfer_data, {"destination", "amount"}, _param(prefix, "transfer_data"))
    if transfer_data:
        if transfer_data.get("amount") not in (None, ""):
            raise invalid("The sandbox supports transfer_data[destination] only.", _param(prefix, "transfer_data"))
        destination = get_str(
            transfer_data, "destination", required=True, param=_param(prefix, "transfer_data[destination]")
        )
        data["transfer_data"] = {"destination": destination}
    fee = get_int(raw, "application_fee_amount", minimum=0, param=_param(prefix, "application_fee_amount"))
    if fee is not None:
        data["application_fee_amount"] = fee
    on_behalf_of = get_str(raw, "on_behalf_of", param=_param(prefix, "on_behalf_of"))
    if on_behalf_of is not None:
        data["on_behalf_of"] = on_behalf_of
    return data
