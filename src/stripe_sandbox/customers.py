"""Customers and their saved cards (PaymentMethods) in the sandbox.

A card is saved to a customer when a Checkout Session with that `customer` and
`payment_intent_data[setup_future_usage]` is paid ("If a Customer has been provided ... Checkout
attaches the payment method to the Customer", the pinned SDK's `setup_future_usage`), or when one
of Stripe's test PaymentMethods (`pm_card_visa`, `pm_card_chargeCustomerFail`, ...: cards.py) is
attached with `POST /v1/payment_methods/{id}/attach`, which makes a new PaymentMethod of that card.
Detaching leaves the PaymentMethod without a customer; it cannot be attached or charged again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import cards, objects
from .errors import invalid, no_such
from .params import check_known, get_metadata, get_str
from .store import Filter

if TYPE_CHECKING:
    from .service import ApiCall

CUSTOMER = "customer"
METHOD = "payment_method"
CUSTOMER_PARAMS = {"email", "name", "description", "phone", "metadata", "preferred_locales", "expand"}


def customer(
    *, customer_id: str, email: str | None, name: str | None, description: str | None, phone: str | None,
    metadata: dict[str, str], now: int
) -> dict[str, Any]:  # fmt: skip
    """A new customer (fields of the pinned SDK's `Customer`, the ones always present)."""
    return {
        "id": customer_id,
        "object": CUSTOMER,
        "address": None,
        "balance": 0,
        "business_name": None,
        "created": now,
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": description,
        "discount": None,
        "email": email,
        "individual_name": None,
        "invoice_prefix": customer_id[4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


class CustomerOps:
    """The customers and payment methods part of :class:`stripe_sandbox.service.Sandbox`."""

    # provided by Sandbox
    store: Any

    def now(self) -> int: ...  # pragma: no cover

    def _render(self, obj: dict[str, Any], call: ApiCall, prefix: str = "") -> dict[str, Any]: ...  # pragma: no cover

    def _list(self, type_: str, call: ApiCall, filters: list, url: str, known: set[str]) -> dict[str, Any]: ...

    # -- customers ---------------------------------------------------------------------

    def create_customer(self, call: ApiCall) -> dict[str, Any]:
        """POST /v1/customers."""
        params = call.params
        check_known(params, CUSTOMER_PARAMS)
        found = customer(
            customer_id=objects.new_id("cus_", 14),
            email=get_str(params, "email", max_len=512),
            name=get_str(params, "name", max_len=256),
            description=get_str(params, "description", max_len=350),
            phone=get_str(params, "phone", max_len=20),
            metadata=get_metadata(params),
            now=self.now(),
        )
        self.store.insert(found)
        return self._render(found, call)

    def retrieve_customer(self, call: ApiCall, customer_id: str) -> dict[str, Any]:
        """GET /v1/customers/{id}."""
        check_known(call.params, {"expand"})
        return self._render(self.customer_of(customer_id, "id", status=404), call)

    def list_customers(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/customers (filter: email, exact and case-sensitive as Stripe's)."""
        filters = [Filter("email", "=", v)] if (v := get_str(call.params, "email")) else []
        return self._list(CUSTOMER, call, filters, "/v1/customers", {"email"})

    def customer_of(self, customer_id: str, param: str = "customer", status: int = 400) -> dict[str, Any]:
        """The customer with this id; Stripe's resource_missing otherwise."""
        found = self.store.get(customer_id, CUSTOMER)
        if found is None:
            raise no_such(CUSTOMER, customer_id, param, status=status)
        return found

    # -- payment methods ------------------------------------------------------------------

    def list_payment_methods(self, call: ApiCall) -> dict[str, Any]:
        """GET /v1/payment_methods?customer=&type=: a customer's saved cards, newest first."""
        customer_id = get_str(call.params, "customer")
        if customer_id is None:
            # Without a customer Stripe lists Treasury payment methods, which the sandbox has none of.
            raise invalid("The Stripe sandbox lists the payment methods of a customer: pass customer.", "customer")
        self.customer_of(customer_id)
        filters = [Filter("customer", "=", customer_id)]
        kind = get_str(call.params, "type")
        if kind is not None:
            filters.append(Filter("type", "=", kind))
        return self._list(METHOD, call, filters, "/v1/payment_methods", {"customer", "type"})

    def retrieve_payment_method(self, call: ApiCall, method_id: str) -> dict[str, Any]:
        """GET /v1/payment_methods/{id}."""
        check_known(call.params, {"expand"})
        return self._render(self.payment_method_of(method_id, "id", status=404), call)

    def payment_method_of(self, method_id: str, param: str = "payment_method", status: int = 400) -> dict[str, Any]:
        """The PaymentMethod with this id; Stripe's resource_missing otherwise."""
        found = self.store.get(method_id, METHOD)
        if found is None:
            raise no_such(METHOD, method_id, param, status=status)
        return found

    def attach_payment_method(self, call: ApiCall, method_id: str) -> dict[str, Any]:
        """POST /v1/payment_methods/{id}/attach {customer}: one of Stripe's test PaymentMethods
        (a new PaymentMethod of that card), or a stored one not attached yet."""
        params = call.params
        check_known(params, {"customer", "expand"})
        customer_id = get_str(params, "customer", required=True) or ""
        self.customer_of(customer_id)
        number = cards.TEST_PAYMENT_METHODS.get(method_id)
        if number is not None:
            method = self.save_card(customer_id, number=number, exp_month=12, exp_year=2034, name=None, email=None)
            return self._render(method, call)
        method = self.payment_method_of(method_id, "payment_method", status=404)
        if method.get("_detached"):
            raise invalid(
                "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, "
                "shared with a connected account without Customer attachment, or was detached from a Customer. "
                "It may not be used again. To use a PaymentMethod multiple times, you must attach it to a "
                "Customer first.",
                "payment_method",
            )
        if method["customer"] not in (None, customer_id):
            raise invalid("The payment method you provided has already been attached to a customer.", "payment_method")
        method["customer"] = customer_id
        self.store.update(method)
        return self._render(method, call)

    def detach_payment_method(self, call: ApiCall, method_id: str) -> dict[str, Any]:
        """POST /v1/payment_methods/{id}/detach: it can be neither charged nor attached again."""
        check_known(call.params, {"expand"})
        method = self.payment_method_of(method_id, "payment_method", status=404)
        if method["customer"] is None:
            raise invalid(
                "The payment method you provided is not attached to a customer so detachment is impossible.",
                "payment_method",
            )
        method.update(customer=None, _detached=True)
        self.store.update(method)
        return self._render(method, call)

    def save_card(
        self, customer_id: str | None, *, number: str, exp_month: int, exp_year: int, name: str | None,
        email: str | None
    ) -> dict[str, Any]:  # fmt: skip
        """Store a new card PaymentMethod, attached to `customer_id` (or to no one)."""
        method = cards.payment_method(
            method_id=objects.new_id("pm_"),
            number=number,
            exp_month=exp_month,
            exp_year=exp_year,
            name=name,
            email=email,
            customer=customer_id,
            now=self.now(),
        )
        self.store.insert(method)
        return method
