"""PaymentIntents created through the API: charging a customer's saved card, on-session or
off-session (docs.stripe.com/payments/save-and-reuse, "Charge the saved payment method later").

`POST /v1/payment_intents {amount, currency, customer, payment_method, off_session=true,
confirm=true}` charges the card at once, as the test cards of `cards.py` say:

- it succeeds: the intent `succeeded` with its charge (`latest_charge`), refundable like any;
  events `payment_intent.created`, `charge.succeeded`, `payment_intent.succeeded`;
- it is declined (`4000 0000 0000 0341` once attached, `…0002`): HTTP 402, a `card_error` with
  `code=card_declined`, `decline_code`, `charge` and the `payment_intent` in the error; the intent
  is left `requires_payment_method` with its `last_payment_error` and the failed charge;
  events `payment_intent.created`, `charge.failed`, `payment_intent.payment_failed`;
- it needs authentication (`4000 0027 6000 3184`): off-session (or with
  `error_on_requires_action`) the same 402 with `code=authentication_required` and the intent
  `requires_payment_method` ("When a payment attempt fails, the request also fails with a 402 HTTP
  status code and the status of the PaymentIntent is requires_payment_method"); on-session the
  intent is `requires_action` with a `next_action` (event `payment_intent.requires_action`).

Without `confirm` the intent is only created (`requires_payment_method`, or
`requires_confirmation` with a payment method). With `setup_future_usage` and a `customer`, a card
not attached yet is attached to that customer once the payment succeeds.

A destination charge (docs.stripe.com/connect/destination-charges): with
`transfer_data[destination]` (and optionally `application_fee_amount`) the succeeded charge is split
exactly as a Checkout's destination charge is, by the same code (`DestinationOps.destination_of` checks
the parameters before anything is charged, `DestinationOps.split_charge` makes the transfer of the whole
amount, the application fee taken from it, their balance transactions and events), and its refunds
may reverse the transfer and refund the fee as any. `transfer_data[amount]`, `on_behalf_of` and
manual capture are not supported (as on Checkout): asked of this route they are refused rather than
ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import cards, objects
from .currencies import MINIMUM_CHARGE, check_currency, check_unit_amount, format_amount
from .destinations import get_fee_params
from .errors import ApiError, invalid
from .params import check_known, get_bool, get_int, get_metadata, get_str

if TYPE_CHECKING:
    from .service import ApiCall, Origin

INTENT_PARAMS = {
    "amount",
    "currency",
    "customer",
    "payment_method",
    "off_session",
    "confirm",
    "error_on_requires_action",
    "setup_future_usage",
    "metadata",
    "description",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
    "transfer_data",
    "application_fee_amount",
    "expand",
}
NOT_HERE = ("on_behalf_of", "capture_method", "confirmation_token")
# A declined charge's outcome, per decline code.
_OUTCOME = {
    "generic_decline": ("issuer_declined", "The bank did not return any further details with this decline."),
    "authentication_required": (
        "issuer_declined",
        "The bank returned the decline code `authentication_required`.",
    ),
}


class IntentOps:
    """The PaymentIntent part of :class:`stripe_sandbox.service.Sandbox` (a mixin)."""

    # provided by Sandbox
    store: Any

    def now(self) -> int: ...  # pragma: no cover

    def _render(self, obj: dict[str, Any], call: ApiCall, prefix: str = "") -> dict[str, Any]: ...  # pragma: no cover

    if TYPE_CHECKING:  # of the other mixins and Sandbox

        def _emit(self, type_: str, obj: dict, origin: Origin, previous: dict | None = None) -> dict: ...

        def destination_of(self, data: dict[str, Any], amount: int, prefix: str = "payment_intent_data") -> None: ...

        def split_charge(self, intent: dict, charge: dict, data: dict[str, Any], origin: Origin) -> None: ...

        def customer_of(self, customer_id: str, param: str = "customer", status: int = 400) -> dict[str, Any]: ...

        def payment_method_of(self, method_id: str, param: str = "payment_method", status: int = 400) -> dict: ...

    def create_payment_intent(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/payment_intents."""
        params = call.params
        check_known(params, INTENT_PARAMS | set(NOT_HERE))
        for name in NOT_HERE:
            if name in params:
                raise invalid(f"The Stripe sandbox does not support {name} on PaymentIntents it creates.", name)
        amount, currency = _amount(params)
        split = get_fee_params(params, prefix="")
        self.destination_of(split, amount, prefix="")
        customer_id = get_str(params, "customer")
        if customer_id:
            self.customer_of(customer_id)
        method = self._method(params, customer_id)
        confirm = bool(get_bool(params, "confirm"))
        off_session = params.get("off_session") not in (None, "", "false")
        if off_session and not confirm:
            raise invalid("You may only specify `off_session` when `confirm=true`.", "off_session")
        if confirm and method is None:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method. Update the "
                "PaymentIntent with a payment method and then confirm it again.",
                "payment_method",
            )
        intent = self._new_intent(params, amount=amount, currency=currency, customer_id=customer_id, method=method)
        if "transfer_data" in split:
            to = split["transfer_data"]["destination"]
            intent.update(transfer_data={"amount": None, "destination": to})
            intent.update(application_fee_amount=split.get("application_fee_amount") or None)
        self.store.insert(intent)
        self._emit("payment_intent.created", intent, call.origin)
        if not confirm or method is None:
            return self._render(intent, call)
        outcome = cards.CARDS[method["_number"]].charge
        if outcome == "succeeds":
            return self._render(self._succeed(intent, method, call), call)
        if outcome == "authentication_required" and not (off_session or get_bool(params, "error_on_requires_action")):
            intent.update(status="requires_action", next_action=_next_action(intent))
            self.store.update(intent)
            self._emit("payment_intent.requires_action", intent, call.origin)
            return self._render(intent, call)
        code = "card_declined" if outcome == "declined" else "authentication_required"
        raise self._decline(intent, method, call, code=code)

    # -- the parts -------------------------------------------------------------------------

    def _method(self, params: dict[str, Any], customer_id: str | None) -> dict[str, Any] | None:
        method_id = get_str(params, "payment_method")
        if not method_id:
            return None
        method = self.payment_method_of(method_id)
        if method.get("_detached"):
            raise invalid(
                "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, "
                "shared with a connected account without Customer attachment, or was detached from a Customer. "
                "It may not be used again. To use a PaymentMethod multiple times, you must attach it to a "
                "Customer first.",
                "payment_method",
            )
        owner = method.get("customer")
        if owner is not None and customer_id is None:
            raise invalid(
                f"The provided PaymentMethod belongs to a Customer ({owner}). Please include the Customer in the "
                "`customer` parameter on the PaymentIntent.",
                "payment_method",
            )
        if owner is not None and owner != customer_id:
            raise invalid(
                f"The payment method supplied ({method_id}) does not belong to a Customer you supplied "
                f"({customer_id}).",
                "payment_method",
            )
        return method

    def _new_intent(
        self, params: dict[str, Any], *, amount: int, currency: str, customer_id: str | None,
        method: dict[str, Any] | None
    ) -> dict[str, Any]:  # fmt: skip
        intent = objects.payment_intent(
            intent_id=objects.new_id("pi_"),
            charge_id="",
            payment_method=method["id"] if method else "",
            now=self.now(),
            amount=amount,
            currency=currency,
            metadata=get_metadata(params),
            description=get_str(params, "description"),
            receipt_email=get_str(params, "receipt_email"),
            extra={},
        )
        intent.update(
            amount_received=0,
            capture_method="automatic",
            customer=customer_id,
            latest_charge=None,
            payment_method=method["id"] if method else None,
            setup_future_usage=get_str(params, "setup_future_usage"),
            statement_descriptor=get_str(params, "statement_descriptor"),
            statement_descriptor_suffix=get_str(params, "statement_descriptor_suffix"),
            status="requires_confirmation" if method else "requires_payment_method",
            transfer_group=get_str(params, "transfer_group"),
        )
        return intent

    def _charge_of(self, intent: dict[str, Any], method: dict[str, Any]) -> dict[str, Any]:
        card = method["card"]
        charge = objects.charge(
            charge_id=objects.new_id("ch_"),
            intent=intent,
            payment_method=method["id"],
            billing_name=method["billing_details"]["name"],
            email=method["billing_details"]["email"],
            card=objects.card_details(method["_number"], card["exp_month"], card["exp_year"]),
        )
        charge.update(customer=intent["customer"], created=self.now(), transfer_group=intent["transfer_group"])
        return charge

    def _succeed(self, intent: dict[str, Any], method: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        """The charge succeeded: its balance transaction and, for a destination charge, its split
        (the same as a Checkout's: `DestinationOps.split_charge`)."""
        charge = self._charge_of(intent, method)
        split = {"transfer_data": intent["transfer_data"], "application_fee_amount": intent["application_fee_amount"]}
        self.split_charge(intent, charge, split, call.origin)
        self.store.insert(charge)
        intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"])
        self.store.update(intent)
        if intent["setup_future_usage"] and intent["customer"] and method["customer"] is None:
            method["customer"] = intent["customer"]
            self.store.update(method)
        self._emit("charge.succeeded", charge, call.origin)
        self._emit("payment_intent.succeeded", intent, call.origin)
        return intent

    def _decline(self, intent: dict[str, Any], method: dict[str, Any], call: ApiCall, *, code: str) -> ApiError:
        """Record the failed charge and the intent back at requires_payment_method; the 402."""
        decline = "generic_decline" if code == "card_declined" else code
        message = cards.DECLINED_MESSAGE if code == "card_declined" else cards.AUTHENTICATION_MESSAGE
        charge = self._charge_of(intent, method)
        kind, seller_message = _OUTCOME[decline]
        charge.update(
            amount_captured=0, balance_transaction=None, captured=False, paid=False, status="failed",
            failure_code=code, failure_message=message,
        )  # fmt: skip
        charge["outcome"].update(
            network_status="declined_by_network", reason=decline, seller_message=seller_message, type=kind
        )
        self.store.insert(charge)
        shown_method = {k: v for k, v in method.items() if not k.startswith("_")}
        error = {
            "charge": charge["id"],
            "code": code,
            "decline_code": decline,
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "message": message,
            "payment_method": shown_method,
            "type": "card_error",
        }
        intent.update(
            status="requires_payment_method", latest_charge=charge["id"], payment_method=None, last_payment_error=error
        )
        self.store.update(intent)
        self._emit("charge.failed", charge, call.origin)
        self._emit("payment_intent.payment_failed", intent, call.origin)
        extra = {"decline_code": decline, "charge": charge["id"], "payment_method": shown_method}
        extra["payment_intent"] = self._render(intent, call)
        return ApiError(402, "card_error", message, code=code, extra=extra)


def _amount(params: dict[str, Any]) -> tuple[int, str]:
    amount = get_int(params, "amount", required=True, minimum=1, maximum=99_999_999) or 0
    currency = (get_str(params, "currency", required=True) or "").lower()
    check_currency(currency, "currency")
    check_unit_amount(amount, currency, "amount")
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and amount < minimum:
        raise invalid(
            f"Amount must be at least {format_amount(minimum, currency)} {currency}", "amount", "amount_too_small"
        )
    return amount, currency


def _next_action(intent: dict[str, Any]) -> dict[str, Any]:
    """What the payer must do: 3D Secure, through Stripe.js (`handleNextAction`)."""
    return {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "type": "three_d_secure_redirect",
            "stripe_js": f"https://hooks.stripe.com/redirect/authenticate/{intent['id']}",
            "source": objects.new_id("src_"),
        },
    }
