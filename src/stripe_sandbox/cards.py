"""Stripe's documented test cards (https://docs.stripe.com/testing) and what each does, and the
PaymentMethod object of a card.

- 4242 4242 4242 4242 (test PaymentMethod `pm_card_visa`): pays on the hosted page; charged
  later, succeeds.
- 4000 0000 0000 0002 (`pm_card_visa_chargeDeclined`): declined on the page and when charged
  (`card_declined`, decline code `generic_decline`).
- 4000 0000 0000 0341 (`pm_card_chargeCustomerFail`): "Attaching this card to a Customer object
  succeeds, but attempts to charge the customer fail": declined on the page (the payment is a
  charge) and every later charge `card_declined`.
- 4000 0027 6000 3184 (`pm_card_authenticationRequired`): "This card requires authentication on
  all transactions, regardless of how the card is set up": pays on the hosted page (the payer is
  there to authenticate; the page stands for the 3D Secure step), and off-session every charge
  fails with `authentication_required`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

SUCCESS = "4242424242424242"
DECLINE = "4000000000000002"
CHARGE_FAILS = "4000000000000341"
AUTHENTICATION = "4000002760003184"


@dataclass(frozen=True)
class Behaviour:
    """What a test card does when it is charged."""

    pays_on_page: bool  # the hosted checkout page (the payer present, authenticating if asked)
    charge: str  # off-session or on-session charge: succeeds | declined | authentication_required


CARDS: dict[str, Behaviour] = {
    SUCCESS: Behaviour(pays_on_page=True, charge="succeeds"),
    DECLINE: Behaviour(pays_on_page=False, charge="declined"),
    CHARGE_FAILS: Behaviour(pays_on_page=False, charge="declined"),
    AUTHENTICATION: Behaviour(pays_on_page=True, charge="authentication_required"),
}

# Stripe's test PaymentMethods ("pm_card_…", https://docs.stripe.com/testing#cards): attaching one
# to a customer makes a new PaymentMethod of that card.
TEST_PAYMENT_METHODS = {
    "pm_card_visa": SUCCESS,
    "pm_card_visa_chargeDeclined": DECLINE,
    "pm_card_chargeCustomerFail": CHARGE_FAILS,
    "pm_card_authenticationRequired": AUTHENTICATION,
}

DECLINED_MESSAGE = "Your card was declined."
AUTHENTICATION_MESSAGE = "Your card was declined. This transaction requires authentication."


def fingerprint(number: str) -> str:
    """The card's fingerprint: the same for the same number."""
    return hashlib.sha256(number.encode()).hexdigest()[:16]


def payment_method(
    *,
    method_id: str,
    number: str,
    exp_month: int,
    exp_year: int,
    name: str | None,
    email: str | None,
    customer: str | None,
    now: int,
) -> dict[str, Any]:
    """A card PaymentMethod (its number kept privately, in `_number`, for what charging it does)."""
    return {
        "id": method_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": "visa",
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "display_brand": "visa",
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": fingerprint(number),
            "funding": "credit",
            "generated_from": None,
            "last4": number[-4:],
            "networks": {"available": ["visa"], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now,
        "customer": customer,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_number": number,
    }
