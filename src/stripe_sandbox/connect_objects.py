"""Builders of Stripe Connect objects: accounts, account links, transfers, application fees,
their reversals and refunds, balance transactions (fields as in Stripe's fixtures3.json)."""

from __future__ import annotations

from typing import Any

from .objects import _address, list_object, new_id

# What an Express account must still provide before it can take charges and receive payouts.
ONBOARDING_DUE = [
    "business_profile.url",
    "external_account",
    "individual.dob.day",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]
PLATFORM_APPLICATION = "ca_sandboxPlatform0000000000"


def _requirements(due: list[str], disabled_reason: str | None) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due) if disabled_reason else [],
        "pending_verification": [],
    }


def requirements(due: list[str]) -> dict[str, Any]:
    """``requirements`` of an account that still has ``due`` to provide."""
    return _requirements(due, "requirements.past_due" if due else None)


def account(
    *, account_id: str, type_: str, country: str, email: str | None, metadata: dict[str, str], now: int
) -> dict[str, Any]:
    """A new connected account: nothing submitted, nothing enabled."""
    return {
        "id": account_id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "name": None,
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "inactive", "transfers": "inactive"},
        "charges_enabled": False,
        "controller": {
            "fees": {"payer": "application"},
            "is_controller": True,
            "losses": {"payments": "application"},
            "requirement_collection": "stripe",
            "stripe_dashboard": {"type": type_ if type_ in ("express", "full", "none") else "full"},
            "type": "application",
        },
        "country": country,
        "created": now,
        "default_currency": "usd",
        "details_submitted": False,
        "email": email,
        "external_accounts": list_object([], False, f"/v1/accounts/{account_id}/external_accounts"),
        "future_requirements": _requirements([], None),
        "livemode": False,
        "metadata": metadata,
        "payouts_enabled": False,
        "requirements": requirements(ONBOARDING_DUE),
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": "offer"},
            "payments": {
                "statement_descriptor": None,
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": type_,
    }


def address() -> dict[str, Any]:
    """An empty address."""
    return _address()


def account_link(*, url: str, now: int, expires_at: int) -> dict[str, Any]:
    """An account link (it has no id at Stripe)."""
    return {"object": "account_link", "created": now, "expires_at": expires_at, "url": url}


def balance_transaction(
    *,
    amount: int,
    currency: str,
    source: str,
    type_: str,
    category: str,
    description: str | None,
    now: int,
    fee: int = 0,
) -> dict[str, Any]:
    """A balance transaction, available at once in the sandbox; `fee`: an application fee taken
    from it (a destination charge's payment on the connected account), so net = amount - fee."""
    details = [{"amount": fee, "application": PLATFORM_APPLICATION, "currency": currency,
                "description": "Application fee", "type": "application_fee"}] if fee else []  # fmt: skip
    return {
        "id": new_id("txn_"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": now,
        "balance_type": "payments",
        "created": now,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": details,
        "net": amount - fee,
        "reporting_category": category,
        "source": source,
        "status": "available",
        "type": type_,
    }


def transfer(
    *,
    transfer_id: str,
    amount: int,
    currency: str,
    destination: str,
    charge_id: str,
    txn: str,
    group: str | None,
    now: int,
) -> dict[str, Any]:
    """The transfer of a destination charge to its connected account."""
    return {
        "id": transfer_id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": txn,
        "created": now,
        "currency": currency,
        "description": None,
        "destination": destination,
        "destination_payment": new_id("py_"),
        "livemode": False,
        "metadata": {},
        "reversals": list_object([], False, f"/v1/transfers/{transfer_id}/reversals"),
        "reversed": False,
        "source_transaction": charge_id,
        "source_type": "card",
        "transfer_group": group,
    }


def application_fee(
    *, fee_id: str, amount: int, currency: str, account_id: str, charge_id: str, txn: str, now: int
) -> dict[str, Any]:
    """The platform's fee on a destination charge."""
    return {
        "id": fee_id,
        "object": "application_fee",
        "account": account_id,
        "amount": amount,
        "amount_refunded": 0,
        "application": PLATFORM_APPLICATION,
        "balance_transaction": txn,
        "charge": charge_id,
        "created": now,
        "currency": currency,
        "fee_source": {"charge": charge_id, "type": "charge"},
        "livemode": False,
        "originating_transaction": None,
        "refunded": False,
        "refunds": list_object([], False, f"/v1/application_fees/{fee_id}/refunds"),
    }


def transfer_reversal(
    *, reversal_id: str, amount: int, currency: str, transfer_id: str, refund_id: str, txn: str, now: int
) -> dict:
    """A (partial) reversal of a transfer caused by a refund."""
    return {
        "id": reversal_id,
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": txn,
        "created": now,
        "currency": currency,
        "destination_payment_refund": new_id("pyr_"),
        "metadata": {},
        "source_refund": refund_id,
        "transfer": transfer_id,
    }


def fee_refund(*, refund_id: str, amount: int, currency: str, fee_id: str, txn: str, now: int) -> dict[str, Any]:
    """A (partial) refund of an application fee."""
    return {
        "id": refund_id,
        "object": "fee_refund",
        "amount": amount,
        "balance_transaction": txn,
        "created": now,
        "currency": currency,
        "fee": fee_id,
        "metadata": {},
    }
