"""Stripe's currencies as the sandbox enforces them, from docs.stripe.com/currencies:

- "Supported presentment currencies": the three-letter codes a charge may be made in (lower case);
- "Zero-decimal currencies" (amounts are whole units) and "Three-decimal currencies" (amounts in
  thousandths, whose last digit must be 0 "to ensure compatibility with Stripe's payments
  partners");
- "Minimum and maximum charge amounts": the least amount a charge may be, per settlement
  currency. A charge in a currency without its own row must convert to at least the settlement
  currency's minimum; the sandbox has no exchange rates and checks only the currencies listed.

Tutorbook keeps its own table (`tutorbook.currencies`): the sandbox imports nothing of it.
"""

from __future__ import annotations

from .errors import invalid

ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
PRESENTMENT = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd
    cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq
    gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd
    lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk
    php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs tnd top
    try ttd twd tzs uah ugx usd uyu uzs vnd vuv wst xaf xcd xcg xof xpf yer zar zmw
    """.split()
)
# Minor units.
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50, "mxn": 1000,
    "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300, "sgd": 50, "thb": 1000,
}  # fmt: skip


def exponent(currency: str) -> int:
    """Digits after the decimal point of the currency's amounts."""
    code = currency.lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def format_amount(amount: int, currency: str) -> str:
    """Minor units as text, e.g. (5000, "usd") -> "USD 50.00"."""
    places = exponent(currency)
    return f"{currency.upper()} {amount / 10**places:.{places}f}"


def check_currency(currency: str, param: str) -> str:
    """The currency, lower case; 400 naming `param` unless Stripe supports it."""
    code = currency.lower()
    if code not in PRESENTMENT:
        supported = ", ".join(sorted(PRESENTMENT))
        raise invalid(f"Invalid currency: {currency}. Stripe currently supports these currencies: {supported}", param)
    return code


def check_unit_amount(amount: int, currency: str, param: str) -> None:
    """A three-decimal currency's amounts must end in 0."""
    if currency in THREE_DECIMAL and amount % 10:
        raise invalid(
            f"Invalid amount for {currency.upper()}: three-decimal currencies need the last digit to be 0 "
            f"(round {amount} to the nearest ten).",
            param,
        )


def check_total(amount: int, currency: str, param: str) -> None:
    """A charge under the currency's minimum is refused (`amount_too_small`)."""
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and amount < minimum:
        raise invalid(
            f"The Checkout Session's total amount due must add up to at least {format_amount(minimum, currency)}",
            param,
            "amount_too_small",
        )
