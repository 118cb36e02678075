"""Rules Stripe documents that the SDK's generated types do not carry (they type a country or
an email as a plain ``str``), checked after the types (schema.py) for the routes the product
uses. Each rule cites the page it is taken from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pycountry
from email_validator import EmailNotValidError, validate_email

from .errors import invalid


def check_email(value: Any, param: str) -> None:
    """An email address as Stripe checks it: ``email_invalid`` "The email address is invalid
    (for example, not properly formatted)" (https://docs.stripe.com/error-codes#email-invalid).
    Syntax only: the sandbox does not look up the domain."""
    if not isinstance(value, str) or value == "":
        return
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise invalid(f"Invalid email address: {value}", param, "email_invalid") from None


def check_country(value: Any, param: str) -> None:
    """A two-letter ISO 3166-1 alpha-2 code: "The country in which the account holder resides
    ... Two-letter country code (ISO 3166-1 alpha-2)" (https://docs.stripe.com/api/accounts/create#create_account-country),
    else ``country_code_invalid`` "The country code provided was invalid"
    (https://docs.stripe.com/error-codes#country-code-invalid)."""
    if not isinstance(value, str) or value == "":
        return
    if len(value) != 2 or pycountry.countries.get(alpha_2=value.upper()) is None:
        raise invalid(
            f"Country '{value}' is unknown. Try using a 2-character alphanumeric country code "
            "instead, such as 'US', 'EG', or 'GB'. A full list of country codes is available at "
            "https://www.iso.org/iso-3166-country-codes.html",
            param,
            "country_code_invalid",
        )


def _create_account(params: Mapping[str, Any]) -> None:
    check_country(params.get("country"), "country")
    check_email(params.get("email"), "email")


def _create_session(params: Mapping[str, Any]) -> None:
    check_email(params.get("customer_email"), "customer_email")
    intent_data = params.get("payment_intent_data")
    if isinstance(intent_data, Mapping):
        check_email(intent_data.get("receipt_email"), "payment_intent_data[receipt_email]")


def _list_sessions(params: Mapping[str, Any]) -> None:
    details = params.get("customer_details")
    if isinstance(details, Mapping):
        check_email(details.get("email"), "customer_details[email]")


def _create_customer(params: Mapping[str, Any]) -> None:
    check_email(params.get("email"), "email")


def _create_payment_intent(params: Mapping[str, Any]) -> None:
    check_email(params.get("receipt_email"), "receipt_email")


RULES: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "create_account": _create_account,
    "create_customer": _create_customer,
    "create_payment_intent": _create_payment_intent,
    "create_session": _create_session,
    "list_sessions": _list_sessions,
}


def check_constraints(route: str, params: Mapping[str, Any]) -> None:
    """Apply the documented rules of one route (after its parameters passed the types)."""
    rule = RULES.get(route)
    if rule is not None:
        rule(params)
