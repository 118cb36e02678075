"""Destination charges in the sandbox and the refunds of them, moving money as Stripe documents
it; a Checkout's (`payment_intent_data`) and an off-session PaymentIntent's alike.

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

from typing import TYPE_CHECKING, Any

from . import connect_objects as co
from . import objects
from .errors import invalid
from .params import check_known, get_bool, get_dict, get_int, get_str

if TYPE_CHECKING:
    from .service import Origin


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def proportional(part_of: int, refunded_total: int, charged: int) -> int:
    """What of `part_of` (a transfer, a fee) goes back once `refunded_total` of `charged` is
    refunded: round half up of part_of x refunded_total / charged, on totals (so a run of
    partial refunds never drifts from one refund of their sum), all of it once all is refunded."""
    if refunded_total >= charged:
        return part_of
    return min(part_of, _half_up(part_of * refunded_total, charged))


class DestinationOps:
    """The destination-charge part of :class:`stripe_sandbox.service.Sandbox` (a mixin)."""

    # provided by Sandbox
    store: Any

    if TYPE_CHECKING:  # Sandbox's and ConnectOps's

        def now(self) -> int: ...

        def _emit(self, type_: str, obj: dict, origin: Origin, previous: dict | None = None) -> dict: ...

        def _account(self, account_id: str, param: str = "account", status: int = 404) -> dict[str, Any]: ...

        def _balance(self, **kwargs: Any) -> dict[str, Any]: ...

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

    # -- refunds ---------------------------------------------------------------------------

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
