"""The sandbox holds Checkout to Stripe's currency rules (docs.stripe.com/currencies): supported
presentment currencies only, the minimum charge per currency, zero- and three-decimal amounts."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import currencies

from .helpers import session_params


def priced(currency: str, unit_amount: int, quantity: int = 1) -> dict:
    params = session_params()
    params["line_items"][0]["price_data"].update(currency=currency, unit_amount=unit_amount)
    params["line_items"][0]["quantity"] = quantity
    return params


@pytest.mark.parametrize("currency", ["xyz", "abc", "btc"])
def test_an_unsupported_currency_is_refused_naming_the_parameter(client, currency):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.create(params=priced(currency, 5000))
    assert refused.value.param == "line_items[0][price_data][currency]"
    assert f"Invalid currency: {currency}" in str(refused.value)


@pytest.mark.parametrize(
    "currency,too_small,enough",
    [("usd", 49, 50), ("eur", 10, 50), ("gbp", 29, 30), ("jpy", 10, 50), ("jpy", 49, 50), ("huf", 17499, 17500)],
)
def test_a_total_under_the_currencys_minimum_charge_is_refused(client, currency, too_small, enough):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.create(params=priced(currency, too_small))
    assert (refused.value.code, refused.value.param) == ("amount_too_small", "line_items")
    assert currencies.format_amount(enough, currency) in str(refused.value)
    assert client.v1.checkout.sessions.create(params=priced(currency, enough)).amount_total == enough


def test_a_zero_amount_is_refused_in_every_currency(client):
    for currency in ("gbp", "usd", "jpy"):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.checkout.sessions.create(params=priced(currency, 0))


def test_the_minimum_is_on_the_total_not_each_unit(client):
    assert client.v1.checkout.sessions.create(params=priced("usd", 25, quantity=2)).amount_total == 50


def test_a_three_decimal_amount_must_end_in_zero(client):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.create(params=priced("kwd", 5125))
    assert refused.value.param == "line_items[0][price_data][unit_amount]"
    assert client.v1.checkout.sessions.create(params=priced("kwd", 5120)).amount_total == 5120


def test_amounts_are_shown_in_the_currencys_minor_units():
    assert currencies.format_amount(5000, "usd") == "USD 50.00"
    assert currencies.format_amount(5000, "jpy") == "JPY 5000"
    assert currencies.format_amount(5120, "kwd") == "KWD 5.120"
    assert set(currencies.MINIMUM_CHARGE) <= currencies.PRESENTMENT
    assert currencies.ZERO_DECIMAL | currencies.THREE_DECIMAL <= currencies.PRESENTMENT
