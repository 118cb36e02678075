"""Separate charges and transfers in the sandbox: `POST /v1/transfers` and
`POST /v1/transfers/{id}/reversals` (docs.stripe.com/connect/separate-charges-and-transfers).

Stripe's rules, as the sandbox applies them:

- the destination is a connected account whose `transfers` capability is active
  (`insufficient_capabilities_for_transfer`, as for a destination charge);
- with `source_transaction` (a charge of the platform's): the charge must have succeeded, the
  transfer's currency must be the charge's, and the transfers from it may add up to at most what
  is left of it: its amount less its refunds and the transfers already made from it (less what of
  them was reversed). "Transfer and charge amounts don't have to match. You can split a single
  charge between multiple transfers"; a refund of the charge does not touch such a transfer;
- without it, the transfer is paid from the platform's balance: more than that balance is
  `balance_insufficient` ("a transfer request fails when the amount exceeds the platform's
  available account balance"; the sandbox's balance is always available);
- a reversal takes back at most what is left of the transfer (the whole of it when no `amount`).

The balance transactions: the platform's `transfer` (-amount) and, on the connected account, the
`payment` (+amount) behind the transfer's `destination_payment`; a reversal the platform's
`transfer_refund` (+amount) and the account's `payment_refund` (-amount). Events: `transfer.created`,
`transfer.reversed` (with `previous_attributes` of `amount_reversed` and `reversed`).
The wording of the refusals is the sandbox's; their type, code and param are Stripe's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import connect_objects as co
from . import currencies as money_rules
from . import objects
from .errors import ApiError, conflict, invalid, missing_param, no_such
from .params import check_known, get_int, get_metadata, get_str
from .store import Filter

if TYPE_CHECKING:
    from .service import ApiCall

TRANSFER_PARAMS = {
    "amount",
    "currency",
    "destination",
    "source_transaction",
    "transfer_group",
    "metadata",
    "description",
    "source_type",
    "expand",
}
PLATFORM = "platform"


class TransferOps:
    """The separate-transfers part of :class:`stripe_sandbox.service.Sandbox` (a mixin)."""

    # provided by Sandbox (and ConnectOps)
    store: Any

    def now(self) -> int: ...  # pragma: no cover

    def _render(self, obj: dict[str, Any], call: ApiCall, prefix: str = "") -> dict[str, Any]: ...  # pragma: no cover

    if TYPE_CHECKING:  # ConnectOps's, later in Sandbox's bases: a stub here would hide them

        def _emit(self, type_: str, obj: dict, origin: Any, previous: dict | None = None) -> dict: ...

        def _account(self, account_id: str, param: str = "account", status: int = 404) -> dict[str, Any]: ...

        def _balance(self, **kwargs: Any) -> dict[str, Any]: ...

    def create_transfer(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/transfers."""
        params = call.params
        check_known(params, TRANSFER_PARAMS)
        amount = get_int(params, "amount", minimum=1)
        if amount is None:
            raise missing_param("amount")
        currency = (get_str(params, "currency", required=True) or "").lower()
        money_rules.check_currency(currency, "currency")
        destination = get_str(params, "destination", required=True) or ""
        self._destination(destination)
        source = get_str(params, "source_transaction")
        if source:
            self._check_source(source, amount, currency)
        else:
            self._check_balance(amount, currency)
        now = self.now()
        transfer_id = objects.new_id("tr_")
        txn = self._balance(
            amount=-amount, currency=currency, source=transfer_id, type_="transfer", category="transfer", now=now
        )
        transfer = co.transfer(
            transfer_id=transfer_id,
            amount=amount,
            currency=currency,
            destination=destination,
            charge_id=source or "",
            txn=txn["id"],
            group=get_str(params, "transfer_group"),
            now=now,
        )
        transfer.update(
            source_transaction=source,
            metadata=get_metadata(params),
            description=get_str(params, "description"),
        )
        self._balance(
            amount=amount,
            currency=currency,
            source=transfer["destination_payment"],
            type_="payment",
            category="charge",
            now=now,
            account=destination,
        )
        self.store.insert(transfer)
        self._emit("transfer.created", transfer, call.origin)
        return self._render(transfer, call)

    def create_transfer_reversal(self, call: ApiCall, transfer_id: str) -> dict[str, Any]:
        """POST /v1/transfers/{id}/reversals: all that is left of the transfer, or `amount` of it."""
        params = call.params
        check_known(params, {"amount", "description", "metadata", "refund_application_fee", "expand"})
        transfer = self.store.get(transfer_id, "transfer")
        if transfer is None:
            raise no_such("transfer", transfer_id, "id")
        left = transfer["amount"] - transfer["amount_reversed"]
        if left <= 0:
            raise conflict(f"Transfer {transfer_id} has already been fully reversed.", param="amount")
        amount = get_int(params, "amount", minimum=1)
        amount = left if amount is None else amount
        if amount > left:
            currency = transfer["currency"]
            raise conflict(
                f"You cannot reverse more than is left of the transfer: {objects.format_amount(amount, currency)} "
                f"asked, {objects.format_amount(left, currency)} left of {transfer_id}.",
                param="amount",
            )
        now, currency = self.now(), transfer["currency"]
        reversal_id = objects.new_id("trr_")
        txn = self._balance(
            amount=amount, currency=currency, source=reversal_id, type_="transfer_refund",
            category="transfer_reversal", now=now,
        )  # fmt: skip
        reversal = co.transfer_reversal(
            reversal_id=reversal_id, amount=amount, currency=currency, transfer_id=transfer_id, refund_id="",
            txn=txn["id"], now=now,
        )  # fmt: skip
        reversal.update(source_refund=None, metadata=get_metadata(params))
        self._balance(
            amount=-amount, currency=currency, source=reversal["destination_payment_refund"],
            type_="payment_refund", category="refund", now=now, account=transfer["destination"],
        )  # fmt: skip
        self.store.insert(reversal)
        previous = {"amount_reversed": transfer["amount_reversed"], "reversed": transfer["reversed"]}
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        self.store.update(transfer)
        self._emit("transfer.reversed", transfer, call.origin, previous)
        return self._render(reversal, call)

    # -- the rules -------------------------------------------------------------------------

    def _destination(self, destination: str) -> None:
        account = self.store.get(destination, "account")
        if account is None:
            raise no_such("destination", destination, "destination", status=400)
        if account["capabilities"].get("transfers") != "active":
            raise invalid(
                "Your destination account needs to have at least one of the following capabilities "
                "enabled: transfers, crypto_transfers, legacy_payments",
                "destination",
                "insufficient_capabilities_for_transfer",
            )

    def _check_source(self, source: str, amount: int, currency: str) -> None:
        charge = self.store.get(source, "charge")
        if charge is None:
            raise no_such("charge", source, "source_transaction", status=400)
        if charge["status"] != "succeeded":
            raise conflict(
                f"The source_transaction {source} has not succeeded: only a succeeded charge can fund a transfer.",
                param="source_transaction",
            )
        if charge["currency"] != currency:
            raise invalid(
                f"The currency of source_transaction's balance transaction ({charge['currency']}) must be the "
                f"same as the transfer currency ({currency}).",
                "currency",
            )
        left = self.left_of_charge(charge)
        if amount > left:
            raise conflict(
                f"Insufficient funds in the source transaction {source}: the transfer "
                f"({objects.format_amount(amount, currency)}) is more than is left of the charge "
                f"({objects.format_amount(left, currency)}, after its refunds and the transfers made from it).",
                "balance_insufficient",
                "amount",
            )

    def left_of_charge(self, charge: dict[str, Any]) -> int:
        """What of a charge may still be transferred: its amount less its refunds and less what
        the transfers from it (not reversed) took."""
        taken = 0
        for transfer_id in self.store.ids_where("transfer", [Filter("source_transaction", "=", charge["id"])]):
            transfer = self.store.get(transfer_id, "transfer")
            taken += transfer["amount"] - transfer["amount_reversed"]
        return charge["amount"] - charge["amount_refunded"] - taken

    def _check_balance(self, amount: int, currency: str) -> None:
        available = 0
        filters = [Filter("_account", "=", PLATFORM), Filter("currency", "=", currency)]
        for txn_id in self.store.ids_where("balance_transaction", filters):
            available += self.store.get(txn_id, "balance_transaction")["net"]
        if amount > available:
            raise ApiError(
                400,
                "invalid_request_error",
                "You have insufficient funds in your Stripe account for this transfer. Your card balance is too "
                "low. You can use the /v1/balance endpoint to view your Stripe balance (for more details, see "
                "stripe.com/docs/api#balance).",
                code="balance_insufficient",
                param="amount",
            )
